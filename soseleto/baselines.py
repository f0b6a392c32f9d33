"""Plain (non-bilevel) training: the baselines of Tables 1 and 2.

* noisy baseline: train on the noisy source labels as if they were clean;
* target only: train on the small target set alone;
* fine-tuning: train on one set, then continue on another (``train_plain`` twice on the same
  features, with a fresh classifier when the label space changes).

They reuse :class:`~soseleto.config.TrainerConfig` (``lr_p``, ``momentum``, ``weight_decay``,
``source_batch``, ``epochs``, ``log_every``) so a baseline and SOSELETO run with the same settings.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from soseleto.checkpoint import load_checkpoint, save_checkpoint
from soseleto.config import TrainerConfig, to_dict
from soseleto.rng import generator
from soseleto.trainer import EpochStats, Labeled, check_finite

log = logging.getLogger(__name__)


def train_plain(
    features: nn.Module,
    head: nn.Module,
    data: Labeled,
    cfg: TrainerConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    epochs: int | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    checkpoint_config: Any = None,
) -> list[EpochStats]:
    """Minibatch SGD on cross-entropy (batch mean), ``epochs`` passes over ``data``, in place.

    ``checkpoint`` works as in :meth:`soseleto.trainer.Soseleto.fit`: saved atomically every
    ``checkpoint_every`` (default ``cfg.checkpoint_every``) epochs and resumed from when present (same ``checkpoint_config``).
    """
    device = torch.device(device)
    features.to(device), head.to(device)
    data = data.to(device)
    params = list(features.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    epochs = cfg.epochs if epochs is None else epochs
    batch = min(cfg.source_batch, len(data))
    ck_config = {"trainer": to_dict(cfg), "seed": seed, "plain": True} if checkpoint_config is None else checkpoint_config
    first = 1
    if checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, config=ck_config, map_location=device)
        features.load_state_dict(state["features"]), head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        first = int(state["epoch"]) + 1
        log.info("resumed from %s at epoch %d", checkpoint, first - 1)
    history = []
    for epoch in range(first, epochs + 1):
        features.train(), head.train()
        perm = torch.randperm(len(data), generator=generator(seed * 1_000_003 + epoch - 1)).to(device)
        total, steps = torch.zeros((), device=device), 0
        for start in range(0, len(data), batch):
            idx = perm[start : start + batch]
            loss = F.cross_entropy(head(features(data.x[idx])), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
        stats = EpochStats(epoch, float(total / steps), float("nan"), float("nan"))
        check_finite(EpochStats(epoch, stats.loss_source, 0.0, 0.0))
        history.append(stats)
        if epoch % cfg.log_every == 0 or epoch == epochs:
            log.info("epoch %d/%d  loss %.4f", epoch, epochs, stats.loss_source)
        if checkpoint is not None and (epoch % (checkpoint_every or cfg.checkpoint_every) == 0 or epoch == epochs):
            state = {"features": features.state_dict(), "head": head.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
            save_checkpoint(state, checkpoint, config=ck_config)
        if on_epoch is not None:
            on_epoch(stats)
    return history
