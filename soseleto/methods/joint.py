"""Joint training: one network, each step minimises ``(1 - w) CE(source batch) + w CE(target batch)``
-- the weighted sum of losses that section 3 of the SOSELETO paper argues against."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soseleto.config import PairedConfig, PeerConfig, SGDConfig
from soseleto.core.loop import Labeled, RunResult, train
from soseleto.methods.plain import PlainSGD


def joint_loss(loss_source: torch.Tensor, loss_target: torch.Tensor, target_weight: float) -> torch.Tensor:
    """``(1 - w) * loss_source + w * loss_target`` (both batch means)."""
    return (1.0 - target_weight) * loss_source + target_weight * loss_target


class Joint(PlainSGD):
    def __init__(self, features: nn.Module, head: nn.Module, cfg: SGDConfig, *, target_weight: float):
        super().__init__(features, head, cfg, device=next(head.parameters()).device)
        self.target_weight = target_weight

    def step(self, xs, ys, idx, xt, yt) -> tuple[torch.Tensor, torch.Tensor]:
        self.features.train(), self.head.train()
        loss_s = F.cross_entropy(self.head(self.features(xs)), ys)
        loss_t = F.cross_entropy(self.head(self.features(xt)), yt)
        self.optimizer.zero_grad(set_to_none=True)
        joint_loss(loss_s, loss_t, self.target_weight).backward()
        self.optimizer.step()
        return loss_s.detach(), loss_t.detach()


def run(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PairedConfig,
        options: PeerConfig, *, seed: int, device: torch.device, **common: Any) -> RunResult:
    """Joint training with target weight ``options.target_weight`` (``common``: see
    :func:`soseleto.core.loop.train`)."""
    features.to(device), head.to(device)
    method = Joint(features, head, cfg, target_weight=options.target_weight)
    return RunResult(train(method, source, target, schedule=cfg.schedule, seed=seed, device=device, **common))
