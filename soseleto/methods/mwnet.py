"""Meta-Weight-Net (Shu et al., NeurIPS 2019) on the noisy source with the clean target batch as
the meta batch.

A small MLP ``V(l; psi)`` (1 -> hidden -> 1, ReLU, sigmoid) maps each source sample's loss to its
weight. Per step, with ``l_j = l_j(theta)`` the source losses (fed to ``V`` detached) and
``w_j = V(l_j; psi) / n`` (``n = |b|``; or ``V / sum V`` with ``normalize``):

1. look-ahead: ``theta_hat(psi) = theta - lr * sum_j w_j grad l_j(theta)``, a plain gradient step
   at the network's current learning rate (no momentum, no weight decay);
2. ``psi`` takes an Adam step on ``d L_meta(theta_hat(psi)) / d psi``, ``L_meta`` the mean
   cross-entropy of the clean batch;
3. ``theta`` takes the network's optimiser step on ``sum_j w_j l_j`` with the weights of the new
   ``psi``.

This is the authors' code (``MW-Net.py``): the 1-100-1 sigmoid net, Adam 1e-3 with weight decay
1e-4, the look-ahead at the current ``lr``, losses detached, weights divided by ``n``; an older
script of theirs divides by the batch sum instead (``normalize``).

The psi-gradient needs no second-order backward. ``theta_hat`` is linear in the weights, so

    d L_meta / d w_j = -lr * grad l_j(theta) . g,   g = grad L_meta(theta_hat),

the alignment of each sample's gradient with the meta gradient at the look-ahead point, which
:func:`soseleto.core.forward_mode.losses_and_alignment` returns for the whole batch in one
forward-mode pass at ``theta`` (tangents ``g``); psi's gradient is then a backward through the
tiny MLP alone. One step costs a forward and two backwards of the source batch, a forward and a
backward of the meta batch and one forward-mode pass; the look-ahead's forwards leave BatchNorm's
running statistics as they were, so they move once per step, as in a plain step.

Scores for label-error detection: each source sample's mean over its draws of ``|b| * w_j``, i.e.
its mean ``V`` (in (0, 1)), or with ``normalize`` its mean share (1 = uniform); higher = more
likely clean.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from soseleto.config import PairedConfig, PeerConfig
from soseleto.core.forward_mode import losses_and_alignment
from soseleto.core.loop import Labeled, RunResult
from soseleto.core.rng import seeded
from soseleto.methods.l2rw import Reweighting, train_reweighting


def weight_net(hidden: int, *, seed: int) -> nn.Sequential:
    """``V``: ``(B, 1)`` losses -> ``(B, 1)`` weights in (0, 1), PyTorch's default initialisation
    drawn under ``seed``."""
    with seeded(seed):
        return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())


def sample_weights(vnet: nn.Module, losses: torch.Tensor, *, normalize: bool) -> torch.Tensor:
    """``(B,)`` weights ``w_j`` of the step's ``sum_j w_j l_j`` from ``(B,)`` detached losses:
    ``V(l_j) / B``, or ``V(l_j) / sum_i V(l_i)`` with ``normalize``."""
    v = vnet(losses.unsqueeze(1)).squeeze(1)
    if not normalize:
        return v / len(v)
    total = v.sum()
    return v / torch.where(total > 0, total, torch.ones_like(total))  # sigmoid can underflow to 0


def meta_gradient(features: nn.Module, head: nn.Module, vnet: nn.Module, xs: torch.Tensor, ys: torch.Tensor,
                  xt: torch.Tensor, yt: torch.Tensor, *, lr: float,
                  normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-2 of the module docstring up to psi's gradient, which is *added* to the ``.grad``
    of ``vnet``'s parameters.

    Returns the source losses ``(B,)``, attached to the graph of ``theta`` (kept for the parameter
    step), and the detached meta loss ``L_meta(theta_hat)``.
    """
    losses = F.cross_entropy(head(features(xs)), ys, reduction="none")  # the step's own forward
    w = sample_weights(vnet, losses.detach(), normalize=normalize)  # attached to psi only
    f_named, h_named = list(features.named_parameters()), list(head.named_parameters())
    params = [p for _, p in f_named + h_named]
    grads = torch.autograd.grad((w.detach() * losses).sum(), params, retain_graph=True)
    ahead = [(p.detach() - lr * g).requires_grad_() for p, g in zip(params, grads)]
    f_ahead = {n: p for (n, _), p in zip(f_named, ahead[: len(f_named)])}
    h_ahead = {n: p for (n, _), p in zip(h_named, ahead[len(f_named) :])}
    with _buffers_kept(features, head):
        loss_meta = F.cross_entropy(functional_call(head, h_ahead, (functional_call(features, f_ahead, (xt,)),)), yt)
        g = torch.autograd.grad(loss_meta, ahead)
        f_tan = {n: t for (n, _), t in zip(f_named, g[: len(f_named)])}
        h_tan = {n: t for (n, _), t in zip(h_named, g[len(f_named) :])}
        with torch.no_grad():  # forward mode alone: no graph for the primal losses
            _, align = losses_and_alignment(features, head, xs, ys, f_tan, h_tan)
    # theta_hat is linear in w: d L_meta / d w_j = -lr * a_j
    psi = list(vnet.parameters())
    for p, grad in zip(psi, torch.autograd.grad(w, psi, grad_outputs=-lr * align)):
        p.grad = grad if p.grad is None else p.grad + grad
    return losses, loss_meta.detach()


@contextlib.contextmanager
def _buffers_kept(*modules: nn.Module) -> Iterator[None]:
    """Run the block on copies of the modules' buffers (BatchNorm running statistics), so the
    look-ahead's extra forwards leave them as they were. The originals are swapped out rather than
    written back: the source step's retained graph holds them and refuses any in-place change."""
    saved = [(m, name, b) for module in modules for m in module.modules() for name, b in m._buffers.items()
             if b is not None]
    for m, name, b in saved:
        m._buffers[name] = b.clone()
    try:
        yield
    finally:
        for m, name, b in saved:
            m._buffers[name] = b


class MWNet(Reweighting):
    """The network, its optimiser, the weight net ``V`` and its Adam optimiser; accumulates each
    sample's weight for the detection score (see the module docstring).

    Parameters
    ----------
    features, head
        ``head(features(x))`` gives ``(B, K)`` logits.
    cfg
        The network's optimiser (``lr_p``, ``momentum``, ``weight_decay``); the look-ahead steps
        at the optimiser's current learning rate.
    options
        ``mwnet_hidden``, ``mwnet_lr``, ``mwnet_weight_decay``, ``mwnet_normalize``.
    n_source
        Size of the source set (``idx`` of a step indexes it).
    seed
        Initialisation of ``V``.
    """

    def __init__(self, features: nn.Module, head: nn.Module, cfg: PairedConfig, options: PeerConfig = PeerConfig(),
                 *, n_source: int, device: torch.device | str = "cpu", seed: int = 0):
        super().__init__(features, head, cfg, n_source=n_source, device=device)
        dtype = next(self.features.parameters()).dtype
        self.vnet = weight_net(options.mwnet_hidden, seed=seed).to(device=device, dtype=dtype)
        self.meta_optimizer = torch.optim.Adam(self.vnet.parameters(), lr=options.mwnet_lr,
                                               weight_decay=options.mwnet_weight_decay)
        self.normalize = options.mwnet_normalize

    def step(self, xs, ys, idx, xt, yt) -> tuple[torch.Tensor, torch.Tensor]:
        """One step; returns the detached mean source loss and the meta loss at the look-ahead."""
        if xt is None:
            raise ValueError("Meta-Weight-Net needs a clean target batch as its meta batch")
        self.features.train(), self.head.train()
        self.meta_optimizer.zero_grad(set_to_none=True)
        losses, loss_meta = meta_gradient(self.features, self.head, self.vnet, xs, ys, xt, yt,
                                          lr=self.optimizer.param_groups[0]["lr"], normalize=self.normalize)
        self.meta_optimizer.step()
        with torch.no_grad():
            w = sample_weights(self.vnet, losses.detach(), normalize=self.normalize)
        self.weighted_step(losses, w, idx)
        return losses.detach().mean(), loss_meta

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "vnet": self.vnet.state_dict(), "meta_optimizer": self.meta_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.vnet.load_state_dict(state["vnet"]), self.meta_optimizer.load_state_dict(state["meta_optimizer"])


def run(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
        options: PeerConfig | None = None, *, seed: int, device: torch.device, **common: Any) -> RunResult:
    """Meta-Weight-Net with the clean target as its meta set, ``V`` initialised from ``seed`` (see
    :func:`soseleto.methods.l2rw.train_reweighting`)."""
    mwnet = MWNet(features, head, cfg, options or PeerConfig(), n_source=len(source), device=device, seed=seed)
    return train_reweighting(mwnet, source, target, cfg, seed=seed, device=device, **common)
