"""Plain minibatch SGD on cross-entropy (batch mean): the baselines of Tables 1 and 2.

* noisy baseline: train on the noisy source labels as if they were clean;
* target only: train on the small target set alone;
* fine-tuning: train on one set, then continue on another (two runs on the same features, with a
  fresh classifier when the label space changes).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from soseleto.config import PlainConfig, SGDConfig
from soseleto.core.loop import EpochStats, Labeled, RunResult, train


def sgd(params, cfg: SGDConfig, **group: Any) -> torch.optim.SGD:
    """The optimiser every method uses for its network parameters."""
    return torch.optim.SGD(params, lr=cfg.lr_p, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **group)


class PlainSGD:
    """One network ``head(features(x))`` trained on its batches' cross-entropy. The other
    single-network methods (joint training, L2RW, the loss corrections) derive from it: they keep
    its network, optimiser and state and replace the step."""

    def __init__(self, features: nn.Module, head: nn.Module, cfg: SGDConfig, *, device: torch.device | str = "cpu"):
        self.features, self.head = features.to(device), head.to(device)
        self.optimizer = sgd([*self.features.parameters(), *self.head.parameters()], cfg)

    def step(self, xs, ys, idx, xt=None, yt=None) -> tuple[torch.Tensor, None]:
        self.features.train(), self.head.train()
        loss = F.cross_entropy(self.head(self.features(xs)), ys)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), None

    def state_dict(self) -> dict[str, Any]:
        return {"features": self.features.state_dict(), "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.features.load_state_dict(state["features"]), self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])


def train_plain(features: nn.Module, head: nn.Module, data: Labeled, cfg: PlainConfig, *, seed: int,
                device: torch.device | str = "cpu", checkpoint: str | os.PathLike | None = None,
                identity: Any = None, monitors: dict[str, Callable[[], float]] | None = None,
                name: str = "plain") -> list[EpochStats]:
    """Train ``features`` and ``head`` in place for ``cfg.epochs`` passes over ``data`` (see
    :func:`soseleto.core.loop.train` for ``checkpoint``, ``identity`` and ``monitors``)."""
    method = PlainSGD(features, head, cfg, device=device)
    return train(method, data, None, schedule=cfg.schedule, seed=seed, device=device, checkpoint=checkpoint,
                 identity=identity, monitors=monitors, name=name)


def run_on_source(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PlainConfig,
                  options: Any = None, **common: Any) -> RunResult:
    """The noisy baseline: plain SGD on the noisy source as if its labels were clean (the registry's
    signature: ``common`` as for :func:`train_plain`)."""
    return RunResult(train_plain(features, head, source, cfg, **common))


def run_on_target(features: nn.Module, head: nn.Module, source: Labeled, target: Labeled, cfg: PlainConfig,
                  options: Any = None, **common: Any) -> RunResult:
    """Plain SGD on the clean target alone (fine-tuning, once the network holds the noisy baseline)."""
    return RunResult(train_plain(features, head, target, cfg, **common))
