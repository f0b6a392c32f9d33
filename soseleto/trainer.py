"""The SOSELETO trainer: Algorithm 1 of the paper on device-resident tensors.

One :meth:`Soseleto.step` does, in this order, with every gradient taken at the current
parameters ``theta_m`` (equation 5's approximation ``dL_t/dtheta(theta_m)``):

1. target forward/backward on a target batch -> ``g = dL_t/dtheta`` and ``dL_t/dphi_t``;
2. one dual-number forward over the source batch with tangent ``g`` -> per-sample losses ``l_j``
   and ``d l_j/dtheta . g`` (see :mod:`soseleto.bilevel`);
3. backward of ``L_s = c_s * sum_j alpha_j l_j`` -> ``Q alpha_b`` and ``R alpha_b``;

   (for networks whose samples never interact -- no BatchNorm -- steps 2 and 3 are one ordinary
   forward/backward that also forms the dot products, see :mod:`soseleto.ghost`; same numbers,
   about one convolution per layer cheaper)
4. SGD step: ``theta -= lr_p Q alpha_b``, ``phi_s -= lr_p R alpha_b``, ``phi_t -= lr_p dL_t/dphi_t``
   (with ``phi_t = phi_s`` in noisy-label mode the shared classifier receives both);
5. ``alpha_b <- clip(alpha_b + lr_alpha * lr_p * c_s * (d l_j/dtheta . g))``.

No host-device synchronisation happens inside a step; losses are accumulated on the device and
read once per epoch.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from soseleto import ghost
from soseleto.bilevel import losses_and_alignment, updated_alpha
from soseleto.checkpoint import load_checkpoint, save_checkpoint
from soseleto.config import TrainerConfig, to_dict
from soseleto.evaluate import accuracy, predict
from soseleto.rng import generator

log = logging.getLogger(__name__)


@dataclass
class Labeled:
    """A labelled data set held as tensors: ``x`` (N, ...) float, ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")
        if self.x.shape[0] == 0:
            raise ValueError("data set is empty")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device) -> "Labeled":
        return Labeled(self.x.to(device), self.y.to(device))


@dataclass
class EpochStats:
    epoch: int
    loss_source: float
    loss_target: float
    alpha_mean: float
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        """The epoch's numbers as one JSON-ready row of a run's ``history``."""
        return {"epoch": self.epoch, "loss_source": self.loss_source, "loss_target": self.loss_target,
                "alpha_mean": self.alpha_mean}


class Soseleto:
    """Bilevel trainer holding theta (``features``), phi_s, phi_t and one alpha per source sample.

    Parameters
    ----------
    features
        theta: maps a batch to ``(B, D)`` features.
    source_head
        phi_s: ``(B, D) -> (B, K_s)``.
    target_head
        phi_t, or ``None`` for the noisy-label mode in which phi_t is phi_s (shared classifier).
    n_source
        Number of source samples (length of alpha).
    cfg
        :class:`~soseleto.config.TrainerConfig`.
    n_target
        Target set size; only used by ``loss_scale='dataset'``.
    device
        Where parameters, alpha and data live.
    alignment
        How ``d l_j/dtheta . g`` is computed: ``"forward"`` (forward mode, any network),
        ``"ghost"`` (one backward pass, per-sample networks only) or ``"auto"`` (ghost where
        :func:`soseleto.ghost.supports` holds). Both are exact; ghost is faster.
    """

    def __init__(
        self,
        features: nn.Module,
        source_head: nn.Module,
        target_head: nn.Module | None,
        *,
        n_source: int,
        cfg: TrainerConfig,
        n_target: int | None = None,
        device: torch.device | str = "cpu",
        alignment: str = "auto",
    ) -> None:
        if (target_head is None) != cfg.shared_classifier:
            raise ValueError(
                "shared_classifier=True needs target_head=None (phi_t = phi_s); "
                "shared_classifier=False needs a separate target_head"
            )
        self.cfg = cfg
        self.device = torch.device(device)
        self.features = features.to(self.device)
        self.source_head = source_head.to(self.device)
        self.target_head = self.source_head if target_head is None else target_head.to(self.device)
        self.shared = target_head is None
        self.n_source = int(n_source)
        self.n_target = n_target
        self.alpha = torch.full((self.n_source,), float(cfg.alpha_init), device=self.device)
        params = list(self.features.parameters()) + list(self.source_head.parameters())
        if not self.shared:
            params += list(self.target_head.parameters())
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self._feature_names = [n for n, _ in self.features.named_parameters()]
        self._head_names = [n for n, _ in self.target_head.named_parameters()]
        self.epoch = 0
        if alignment not in ("auto", "forward", "ghost"):
            raise ValueError(f"alignment={alignment!r}; choose 'auto', 'forward' or 'ghost'")
        per_sample = ghost.supports(self.features, self.source_head)
        if alignment == "ghost" and not per_sample:
            raise ValueError("alignment='ghost' needs a network without cross-sample layers (e.g. BatchNorm)")
        if alignment == "auto":
            alignment = "ghost" if per_sample else "forward"
        self.alignment = alignment

    # -- one iteration of Algorithm 1 -------------------------------------------------------------
    def step(self, xs: torch.Tensor, ys: torch.Tensor, idx: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> dict:
        """One SOSELETO iteration on source batch ``(xs, ys)`` with alpha indices ``idx`` ``(B_s,)``
        and target batch ``(xt, yt)``. Returns detached device scalars ``loss_source``, ``loss_target``.
        """
        cfg = self.cfg
        c_s, c_t = self._scales(len(ys), len(yt))
        self._train_mode()

        # 1. target gradient at theta_m (and phi_t's own gradient)
        loss_t = F.cross_entropy(self.target_head(self.features(xt)), yt, reduction="sum") * c_t
        theta = list(self.features.parameters())
        phi_t = list(self.target_head.parameters())
        grads = torch.autograd.grad(loss_t, theta + phi_t)
        feature_tangents, g_phi_t = dict(zip(self._feature_names, grads[: len(theta)])), grads[len(theta) :]
        del grads

        # 2.-3. per-sample source losses, d l_j/dtheta . g, and the gradient of the weighted source
        # loss (alpha_b before its update, as in Algorithm 1)
        head_tangents = None
        if self.shared and cfg.alpha_grad == "all":
            head_tangents = dict(zip(self._head_names, g_phi_t))
        alpha_b = self.alpha[idx]
        self.optimizer.zero_grad(set_to_none=True)
        if self.alignment == "ghost":
            losses, align = ghost.weighted_backward_and_alignment(
                self.features, self.source_head, xs, ys, alpha_b * c_s, feature_tangents, head_tangents
            )
        else:
            losses, align = losses_and_alignment(
                self.features, self.source_head, xs, ys, feature_tangents, head_tangents
            )
            feature_tangents.clear()  # g is not needed any more: free it before backward makes gradients
            ((alpha_b * losses).sum() * c_s).backward()
        loss_s = (alpha_b * losses.detach()).sum() * c_s

        # 4. SGD step of theta, phi_s and phi_t
        for p, g in zip(phi_t, g_phi_t):
            p.grad = g if p.grad is None else p.grad.add_(g)
        self.optimizer.step()

        # 5. alpha update, equation (5)
        self.alpha[idx] = updated_alpha(
            alpha_b, align, step=cfg.lr_alpha * cfg.lr_p * c_s, lo=cfg.alpha_min, hi=cfg.alpha_max
        )
        return {"loss_source": loss_s.detach(), "loss_target": loss_t.detach()}

    # -- epochs -----------------------------------------------------------------------------------
    def fit(
        self,
        source: Labeled,
        target: Labeled,
        *,
        seed: int,
        epochs: int | None = None,
        on_epoch: Callable[["Soseleto", EpochStats], None] | None = None,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        checkpoint_config: Any = None,
    ) -> list[EpochStats]:
        """Train for ``epochs`` (default ``cfg.epochs``) passes over the source set.

        Batches are drawn with ``randperm`` from a generator seeded by ``seed`` and the epoch, so
        a run is reproducible and a resumed run draws the same batches as an uninterrupted one.
        ``on_epoch`` is called after every epoch. With ``checkpoint``, the full state is saved
        there atomically every ``checkpoint_every`` (default ``cfg.checkpoint_every``) epochs and at
        the end, and an existing checkpoint written for the same ``checkpoint_config`` (default:
        trainer config + seed) is resumed from; ``history`` then holds only the epochs run by this call.
        """
        if len(source) != self.n_source:
            raise ValueError(f"source has {len(source)} samples but alpha has {self.n_source}")
        source, target = source.to(self.device), target.to(self.device)
        epochs = self.cfg.epochs if epochs is None else epochs
        ck_config = {"trainer": to_dict(self.cfg), "seed": seed} if checkpoint_config is None else checkpoint_config
        if checkpoint is not None and os.path.exists(checkpoint):
            self.load_state_dict(load_checkpoint(checkpoint, config=ck_config, map_location=self.device))
            log.info("resumed from %s at epoch %d", checkpoint, self.epoch)
        history = []
        while self.epoch < epochs:
            gen = generator(seed * 1_000_003 + self.epoch)
            targets = _cycle_batches(len(target), min(self.cfg.target_batch, len(target)), gen, self.device)
            perm = torch.randperm(len(source), generator=gen).to(self.device)
            sums = torch.zeros(2, device=self.device)
            n_steps = 0
            for start in range(0, len(source), self.cfg.source_batch):
                idx = perm[start : start + self.cfg.source_batch]
                tidx = next(targets)
                out = self.step(source.x[idx], source.y[idx], idx, target.x[tidx], target.y[tidx])
                sums += torch.stack([out["loss_source"], out["loss_target"]])
                n_steps += 1
            self.epoch += 1
            loss_s, loss_t = (sums / n_steps).tolist()
            stats = EpochStats(self.epoch, loss_s, loss_t, float(self.alpha.mean()))
            check_finite(stats)
            history.append(stats)
            if self.epoch % self.cfg.log_every == 0 or self.epoch == epochs:
                log.info(
                    "epoch %d/%d  loss_source %.4f  loss_target %.4f  mean alpha %.3f",
                    self.epoch, epochs, loss_s, loss_t, stats.alpha_mean,
                )
            every = checkpoint_every or self.cfg.checkpoint_every
            if checkpoint is not None and (self.epoch % every == 0 or self.epoch == epochs):
                save_checkpoint(self.state_dict(), checkpoint, config=ck_config)
            if on_epoch is not None:
                on_epoch(self, stats)
        return history

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimiser (momentum buffers), alpha, epoch."""
        return {
            "features": self.features.state_dict(),
            "source_head": self.source_head.state_dict(),
            "target_head": None if self.shared else self.target_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "alpha": self.alpha.detach().cpu(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["alpha"].shape != self.alpha.shape:
            raise ValueError(f"checkpoint has {state['alpha'].numel()} alphas, this run {self.alpha.numel()}")
        self.features.load_state_dict(state["features"])
        self.source_head.load_state_dict(state["source_head"])
        if not self.shared:
            self.target_head.load_state_dict(state["target_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.alpha.copy_(state["alpha"].to(self.device))
        self.epoch = int(state["epoch"])

    # -- evaluation -------------------------------------------------------------------------------
    def predict(self, x: torch.Tensor, *, head: str = "target") -> torch.Tensor:
        """Class predictions ``(N,)`` of the target (or source) network, in eval mode."""
        return predict(self.features, self.target_head if head == "target" else self.source_head, x)

    def accuracy(self, data: Labeled, *, head: str = "target") -> float:
        """Fraction of ``data`` classified correctly by the target (or source) network."""
        return accuracy(self.features, self.target_head if head == "target" else self.source_head, data.x, data.y)

    # -- internals --------------------------------------------------------------------------------
    def _scales(self, b_s: int, b_t: int) -> tuple[float, float]:
        if self.cfg.loss_scale == "dataset":
            if self.n_target is None:
                raise ValueError("loss_scale='dataset' needs n_target")
            return 1.0 / self.n_source, 1.0 / self.n_target
        return 1.0 / b_s, 1.0 / b_t

    def _train_mode(self) -> None:
        self.features.train(), self.source_head.train(), self.target_head.train()


def check_finite(stats: EpochStats) -> None:
    """Stop a diverged run with an error naming the epoch and the quantity."""
    for name in ("loss_source", "loss_target", "alpha_mean"):
        value = getattr(stats, name)
        if not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {stats.epoch}: {name} = {value}")


def _cycle_batches(n: int, batch: int, gen: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Endless target batches: reshuffle whenever a pass over the ``n`` samples is exhausted."""
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n - batch + 1, batch):
            yield perm[start : start + batch]
