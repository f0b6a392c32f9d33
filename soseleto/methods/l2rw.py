"""Learning to Reweight (Ren et al. 2018, Algorithm 1) on the noisy source with the clean target
as the meta (validation) set.

Per source batch the paper takes a look-ahead SGD step ``theta(eps) = theta - lr * grad sum_j
eps_j l_j(theta)`` and sets ``w~_j = max(-d L_clean(theta(eps)) / d eps_j |_{eps=0}, 0)``,
``w = w~ / sum w~`` (all zero -> all zero). At ``eps = 0`` the chain rule gives

    -d L_clean / d eps_j = lr * grad l_j(theta) . grad L_clean(theta),

the directional derivative of ``l_j`` along the clean gradient over *all* parameters (features
and classifier). :func:`soseleto.core.forward_mode.losses_and_alignment` returns it for the whole batch in
one forward-mode pass together with the losses; the positive factor ``lr`` cancels in the
normalisation, so the look-ahead learning rate is not a hyper-parameter. The parameters then take
an ordinary optimiser step on ``sum_j w_j l_j``; the clean set moves them only through the weights.

Scores for label-error detection: each source sample's *mean normalised weight*
``mean over its draws of |b| * w_j`` (``|b|`` the batch size), so 1 is the uniform share, 0 means
the sample was rejected every time it was drawn; higher = more likely clean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soseleto.config import PairedConfig, SGDConfig
from soseleto.core.forward_mode import losses_and_alignment
from soseleto.core.loop import Labeled, RunResult, train
from soseleto.methods.plain import PlainSGD


def l2rw_weights(
    features: nn.Module, head: nn.Module, xs: torch.Tensor, ys: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weights of one L2RW step.

    Returns ``losses`` ``(B,)`` attached to the graph (per-sample source cross-entropies),
    ``weights`` ``(B,)`` detached, non-negative, summing to 1 or all 0, and the detached clean
    batch-mean loss.
    """
    loss_t = F.cross_entropy(head(features(xt)), yt)
    f_named, h_named = list(features.named_parameters()), list(head.named_parameters())
    grads = torch.autograd.grad(loss_t, [p for _, p in f_named + h_named])
    f_tan = {n: g for (n, _), g in zip(f_named, grads[: len(f_named)])}
    h_tan = {n: g for (n, _), g in zip(h_named, grads[len(f_named) :])}
    losses, align = losses_and_alignment(features, head, xs, ys, f_tan, h_tan)
    w = align.clamp_min(0.0)
    total = w.sum()
    w = w / torch.where(total > 0, total, torch.ones_like(total))  # no host sync on the all-zero case
    return losses, w, loss_t.detach()


class Reweighting(PlainSGD):
    """A network stepped on weighted source losses, keeping each sample's weight for the detection
    score: the base of L2RW and Meta-Weight-Net."""

    def __init__(self, features: nn.Module, head: nn.Module, cfg: SGDConfig, *, n_source: int,
                 device: torch.device | str = "cpu"):
        super().__init__(features, head, cfg, device=device)
        self.weight_sum = torch.zeros(n_source, dtype=torch.float64, device=device)
        self.draws = torch.zeros(n_source, dtype=torch.float64, device=device)

    def weighted_step(self, losses: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> None:
        """An optimiser step on ``sum_j w_j l_j`` (``losses`` attached, ``w`` detached, both
        ``(B,)``), recording ``|b| * w_j`` for the samples ``idx``."""
        self.optimizer.zero_grad(set_to_none=True)
        (w * losses).sum().backward()
        self.optimizer.step()
        self.weight_sum[idx] += len(idx) * w.to(self.weight_sum.dtype)
        self.draws[idx] += 1

    def scores(self) -> np.ndarray:
        """``(n_source,)`` mean normalised weight per sample (0 for never-drawn samples)."""
        return (self.weight_sum / self.draws.clamp_min(1)).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weight_sum": self.weight_sum.cpu(), "draws": self.draws.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.weight_sum.copy_(state["weight_sum"]), self.draws.copy_(state["draws"])


class L2RW(Reweighting):
    """Per-sample weights from the clean gradient each step; accumulates each sample's normalised
    weight for the detection score (see the module docstring)."""

    def step(self, xs, ys, idx, xt, yt) -> tuple[torch.Tensor, torch.Tensor]:
        self.features.train(), self.head.train()
        losses, w, loss_t = l2rw_weights(self.features, self.head, xs, ys, xt, yt)
        self.weighted_step(losses, w, idx)
        return losses.detach().mean(), loss_t


def train_reweighting(method: Reweighting, source: Labeled, target: Labeled, cfg: PairedConfig, *, seed: int,
                      device: torch.device, **common: Any) -> RunResult:
    """Train a reweighting method with the clean target as its meta set; scores:
    :meth:`Reweighting.scores`, ``extra['draws']``: how often each source sample was drawn
    (``common``: see :func:`soseleto.core.loop.train`)."""
    history = train(method, source, target, schedule=cfg.schedule, seed=seed, device=device, **common)
    return RunResult(history, method.scores(), {"draws": method.draws.cpu().numpy()})


def run(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
        options: Any = None, *, seed: int, device: torch.device, **common: Any) -> RunResult:
    """L2RW (see :func:`train_reweighting`)."""
    l2rw = L2RW(features, head, cfg, n_source=len(source), device=device)
    return train_reweighting(l2rw, source, target, cfg, seed=seed, device=device, **common)
