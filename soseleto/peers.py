"""Peer methods for the noisy-label setting (large noisy source + small clean target), run in the
same harness as SOSELETO: same data, splits, seeds, networks and :class:`TrainerConfig`.

Methods (``method`` argument of :func:`train_peer`):

* ``joint`` -- one network, each step minimises ``(1 - w) CE(source batch) + w CE(target batch)``:
  the weighted sum of losses that section 3 of the SOSELETO paper argues against;
* ``l2rw`` -- Learning to Reweight (Ren et al. 2018), :mod:`soseleto.peers_reweight`;
* ``glc`` -- Gold Loss Correction (Hendrycks et al. 2018), :mod:`soseleto.peers_correction`;
* ``noise_layer`` -- the noise-adaptation layer of Sukhbaatar et al. (2014), same module.

:func:`train_peer` trains ``features`` and ``head`` in place; the caller evaluates them with
:func:`soseleto.evaluate.accuracy`. Batching and epochs follow :meth:`Soseleto.fit`: one epoch is a
pass over the source set in ``source_batch`` batches drawn with ``randperm``, target batches cycle,
and the same seed draws the same batches (the union-set methods ``glc`` and ``noise_layer`` pass
over source + target instead, as in Hendrycks et al.). Checkpoints resume exactly, as in
``Soseleto.fit`` and :func:`soseleto.baselines.train_plain`.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soseleto.checkpoint import load_checkpoint, save_checkpoint
from soseleto.config import PEER_METHODS, PeerConfig, TrainerConfig, to_dict
from soseleto.rng import generator
from soseleto.trainer import EpochStats, Labeled, _cycle_batches, check_finite

log = logging.getLogger(__name__)

METHODS = PEER_METHODS

# step(xs, ys, idx, xt, yt) -> (loss_source, loss_target) detached device scalars; xt is None
# for the union-set methods.
Step = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PeerResult:
    """What a peer run returns besides the trained modules.

    ``scores`` is ``(n_source,)``, higher = more likely clean, for methods that score source
    samples (``l2rw``), else ``None``. ``extra`` holds method-specific arrays (GLC's estimated
    corruption matrix ``corruption``, the noise layer's learned ``noise_matrix``).
    """

    method: str
    scores: np.ndarray | None
    history: list[EpochStats]
    extra: dict[str, Any] = field(default_factory=dict)


def train_peer(
    method: str,
    features: nn.Module,
    head: nn.Module,
    source: Labeled,
    target: Labeled,
    cfg: TrainerConfig,
    options: PeerConfig = PeerConfig(),
    *,
    seed: int,
    device: torch.device | str = "cpu",
    epochs: int | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    checkpoint_config: Any = None,
) -> PeerResult:
    """Train ``features`` + ``head`` (logits ``(B, K)``) in place with a peer ``method``.

    Parameters
    ----------
    source
        The noisy set: ``x`` (N_s, ...), noisy labels ``y`` (N_s,).
    target
        The small clean (trusted) set, same label space.
    cfg
        ``lr_p``, ``momentum``, ``weight_decay``, ``source_batch``, ``target_batch``, ``epochs``,
        ``log_every`` are used; the alpha-specific fields are ignored.
    options
        :class:`PeerConfig`.
    epochs
        Override of ``cfg.epochs`` (for ``glc``: of stage (iii) only).
    checkpoint
        Saved atomically every ``checkpoint_every`` (default ``cfg.checkpoint_every``) epochs and
        at the end, resumed from when it exists and was written for the same method, configs and
        seed (``glc`` keeps its stage (i) model in ``<checkpoint>.stage1``).
    checkpoint_config
        What the checkpoint must have been written for, replacing the default (method, ``cfg``,
        ``options``, seed); e.g. that plus the noise level and data of a workflow job.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {METHODS}")
    device = torch.device(device)
    features.to(device), head.to(device)
    source, target = source.to(device), target.to(device)
    n_classes = _n_classes(head, source, target)
    run = _Runner(
        cfg, seed=seed, device=device, epochs=cfg.epochs if epochs is None else epochs, on_epoch=on_epoch,
        checkpoint=checkpoint, checkpoint_every=checkpoint_every or cfg.checkpoint_every,
        ck_config=checkpoint_config if checkpoint_config is not None else
        {"method": method, "trainer": to_dict(cfg), "peer": to_dict(options), "seed": seed},
    )
    if method == "joint":
        return _train_joint(run, features, head, source, target, options)
    from soseleto import peers_correction, peers_reweight  # they import this module

    if method == "l2rw":
        return peers_reweight.train_l2rw(run, features, head, source, target)
    if method == "glc":
        return peers_correction.train_glc(run, features, head, source, target, options, n_classes=n_classes)
    return peers_correction.train_noise_layer(run, features, head, source, target, options, n_classes=n_classes)


def joint_loss(loss_source: torch.Tensor, loss_target: torch.Tensor, target_weight: float) -> torch.Tensor:
    """``(1 - w) * loss_source + w * loss_target`` (both batch means)."""
    return (1.0 - target_weight) * loss_source + target_weight * loss_target


def _train_joint(run: "_Runner", features, head, source, target, options: PeerConfig) -> PeerResult:
    opt = run.sgd(list(features.parameters()) + list(head.parameters()))

    def step(xs, ys, idx, xt, yt):
        features.train(), head.train()
        loss_s = F.cross_entropy(head(features(xs)), ys)
        loss_t = F.cross_entropy(head(features(xt)), yt)
        opt.zero_grad(set_to_none=True)
        joint_loss(loss_s, loss_t, options.target_weight).backward()
        opt.step()
        return loss_s.detach(), loss_t.detach()

    history = run.fit(step, {"features": features, "head": head, "optimizer": opt}, source, target, name="joint")
    return PeerResult("joint", None, history)


class _Runner:
    """The epoch loop shared by the peers: batching, logging, divergence check, checkpoints."""

    def __init__(self, cfg: TrainerConfig, *, seed, device, epochs, on_epoch, checkpoint, checkpoint_every, ck_config):
        self.cfg, self.seed, self.device, self.epochs = cfg, seed, device, epochs
        self.on_epoch, self.checkpoint, self.checkpoint_every = on_epoch, checkpoint, checkpoint_every
        self.ck_config = ck_config

    def sgd(self, params, **group) -> torch.optim.SGD:
        cfg = self.cfg
        return torch.optim.SGD(params, lr=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **group)

    def has_checkpoint(self) -> bool:
        return self.checkpoint is not None and os.path.exists(self.checkpoint)

    def fit(self, step: Step, state: dict[str, Any], source: Labeled, target: Labeled | None, *, name: str) -> list[EpochStats]:
        """Run ``step`` over epochs of ``source`` (with cycling ``target`` batches unless ``None``).

        ``state`` maps names to modules, optimisers (anything with ``state_dict``) or tensors
        updated in place; it is what a checkpoint holds, with the epoch.
        """
        cfg, device = self.cfg, self.device
        epoch = 0
        if self.has_checkpoint():
            saved = load_checkpoint(self.checkpoint, config=self.ck_config, map_location=device)
            for key, obj in state.items():
                if isinstance(obj, torch.Tensor):
                    obj.copy_(saved[key])
                else:
                    obj.load_state_dict(saved[key])
            epoch = int(saved["epoch"])
            log.info("%s: resumed from %s at epoch %d", name, self.checkpoint, epoch)
        history = []
        while epoch < self.epochs:
            gen = generator(self.seed * 1_000_003 + epoch)  # same draws as Soseleto.fit
            targets = None if target is None else _cycle_batches(len(target), min(cfg.target_batch, len(target)), gen, device)
            perm = torch.randperm(len(source), generator=gen).to(device)
            sums, n_steps = torch.zeros(2, device=device), 0
            for start in range(0, len(source), cfg.source_batch):
                idx = perm[start : start + cfg.source_batch]
                xt = yt = None
                if targets is not None:
                    tidx = next(targets)
                    xt, yt = target.x[tidx], target.y[tidx]
                sums += torch.stack(step(source.x[idx], source.y[idx], idx, xt, yt))
                n_steps += 1
            epoch += 1
            loss_s, loss_t = (sums / n_steps).tolist()
            stats = EpochStats(epoch, loss_s, loss_t if target is not None else math.nan, math.nan)
            check_finite(EpochStats(epoch, loss_s, 0.0 if target is None else loss_t, 0.0))
            history.append(stats)
            if epoch % cfg.log_every == 0 or epoch == self.epochs:
                log.info("%s: epoch %d/%d  loss_source %.4f  loss_target %.4f", name, epoch, self.epochs, loss_s, stats.loss_target)
            if self.checkpoint is not None and (epoch % self.checkpoint_every == 0 or epoch == self.epochs):
                saved = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v.state_dict() for k, v in state.items()}
                save_checkpoint({**saved, "epoch": epoch}, self.checkpoint, config=self.ck_config)
            if self.on_epoch is not None:
                self.on_epoch(stats)
        return history


def _n_classes(head: nn.Module, source: Labeled, target: Labeled) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TypeError("head must end in an nn.Linear giving the class logits")
    k = linears[-1].out_features
    lo, hi = int(min(source.y.min(), target.y.min())), int(max(source.y.max(), target.y.max()))
    if lo < 0 or hi >= k:
        raise ValueError(f"labels span [{lo}, {hi}] but the head has {k} outputs")
    return k
