"""The one epoch loop. Every method -- SOSELETO, plain SGD, each peer -- is only a step and its state.

A method is any object with

* ``step(xs, ys, idx, xt, yt) -> (loss_source, loss_target | None)``: one update on a source batch
  ``xs`` ``(B_s, ...)``, labels ``ys`` ``(B_s,)``, their source indices ``idx`` ``(B_s,)`` and a
  target batch (``None`` when the run has no target); losses are detached device scalars;
* ``state_dict()`` / ``load_state_dict(state)``: everything needed to resume;
* optionally ``summary() -> dict[str, float]``: per-epoch numbers of its own (SOSELETO: mean alpha).

:func:`train` owns everything else: batches drawn with ``randperm`` from a generator seeded by
``seed`` and the epoch (so a resumed run draws the same batches as an uninterrupted one), cycling
target batches, loss sums kept on the device and read once per epoch, the finite check, progress
lines with an ETA, per-epoch monitors (e.g. test accuracy), the history, and checkpoints that
resume exactly.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import torch

from soseleto.config import Schedule
from soseleto.core.checkpoint import load_checkpoint, save_checkpoint
from soseleto.core.rng import generator

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

    def to(self, device: torch.device | str) -> Labeled:
        return Labeled(self.x.to(device), self.y.to(device))


@dataclass
class EpochStats:
    """One epoch of a run: mean losses over its steps, the method's summary and the monitors."""

    epoch: int
    loss_source: float
    loss_target: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    seconds: float = math.nan

    def record(self) -> dict[str, Any]:
        """The epoch as one JSON-ready row of a run's ``history`` (absent quantities are left out)."""
        row: dict[str, Any] = {"epoch": self.epoch, "loss_source": self.loss_source}
        if self.loss_target is not None:
            row["loss_target"] = self.loss_target
        return {**row, **self.values, "seconds": self.seconds}

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> EpochStats:
        rest = {k: v for k, v in row.items() if k not in ("epoch", "loss_source", "loss_target", "seconds")}
        return cls(row["epoch"], row["loss_source"], row.get("loss_target"), rest, row.get("seconds", math.nan))


@dataclass
class RunResult:
    """What a method's run returns besides its trained modules.

    ``scores`` ``(n_source,)``: one number per source sample, higher = more likely clean or useful
    (SOSELETO's alpha, L2RW's mean weight), or ``None``; ``extra``: method-specific results (e.g.
    GLC's estimated corruption matrix).
    """

    history: list[EpochStats]
    scores: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    def step(self, xs: torch.Tensor, ys: torch.Tensor, idx: torch.Tensor, xt: torch.Tensor | None,
             yt: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def train(
    method: Method,
    source: Labeled,
    target: Labeled | None,
    *,
    schedule: Schedule,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoint: str | os.PathLike | None = None,
    identity: Any = None,
    monitors: dict[str, Callable[[], float]] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    name: str = "train",
) -> list[EpochStats]:
    """Run ``method`` for ``schedule.epochs`` passes over ``source`` (with cycling ``target``
    batches unless ``target`` is ``None``); return the history of every epoch.

    ``checkpoint``: the resumable state is saved there atomically every ``schedule.checkpoint_every``
    epochs and at the end, and resumed from when it exists; it must have been written for the same
    ``identity`` (required with ``checkpoint``: the configs, seed and data that define the run). A
    resumed run returns the history of all its epochs, those before the interruption included.
    ``monitors`` (e.g. test accuracy) are evaluated after the epochs that get a progress line --
    every ``schedule.log_every``-th, the first and the last -- and recorded under their names in
    those epochs' stats; ``on_epoch`` is called with each epoch's stats.
    """
    if checkpoint is not None and identity is None:
        raise ValueError("a checkpoint needs the identity of the run it belongs to")
    device = torch.device(device)
    source = source.to(device)
    target = None if target is None else target.to(device)
    history: list[EpochStats] = []
    if checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, config=identity, map_location=device)
        method.load_state_dict(state)
        history = [EpochStats.from_record(r) for r in state["history"]]
        log.info("%s: resumed from %s at epoch %d", name, checkpoint, len(history))
    epochs, started, resumed = schedule.epochs, time.perf_counter(), len(history)
    while len(history) < epochs:
        epoch_start = time.perf_counter()
        sums, n_steps = _one_epoch(method, source, target, schedule, seed=seed, epoch=len(history), device=device)
        stats = _stats(method, len(history) + 1, sums / n_steps, has_target=target is not None)
        if _reported(stats.epoch, epochs, schedule.log_every):
            for key, fn in (monitors or {}).items():
                stats.values[key] = float(fn())
        stats.seconds = time.perf_counter() - epoch_start
        history.append(stats)
        _log_progress(name, stats, epochs, schedule.log_every,
                      per_epoch=(time.perf_counter() - started) / (len(history) - resumed))
        if checkpoint is not None and (stats.epoch % schedule.checkpoint_every == 0 or stats.epoch == epochs):
            state = {**method.state_dict(), "epoch": stats.epoch, "history": [h.record() for h in history]}
            save_checkpoint(state, checkpoint, config=identity)
        if on_epoch is not None:
            on_epoch(stats)
    return history


def _one_epoch(method: Method, source: Labeled, target: Labeled | None, schedule: Schedule, *, seed: int,
               epoch: int, device: torch.device) -> tuple[torch.Tensor, int]:
    """One pass over ``source``; returns the sums of ``(loss_source, loss_target)`` (on the device) and the steps."""
    gen = generator(seed * 1_000_003 + epoch)
    targets = None
    if target is not None:
        targets = cycle_batches(len(target), min(schedule.target_batch, len(target)), gen, device)
    perm = torch.randperm(len(source), generator=gen).to(device)  # drawn before the first target batch
    sums, n_steps = torch.zeros(2, device=device), 0
    for start in range(0, len(source), schedule.source_batch):
        idx = perm[start : start + schedule.source_batch]
        xt = yt = None
        if targets is not None:
            tidx = next(targets)
            xt, yt = target.x[tidx], target.y[tidx]
        loss_s, loss_t = method.step(source.x[idx], source.y[idx], idx, xt, yt)
        sums += torch.stack([loss_s, loss_s.new_zeros(()) if loss_t is None else loss_t])
        n_steps += 1
    return sums, n_steps


def _stats(method: Method, epoch: int, means: torch.Tensor, *, has_target: bool) -> EpochStats:
    loss_s, loss_t = means.tolist()
    summary = getattr(method, "summary", None)
    stats = EpochStats(epoch, loss_s, loss_t if has_target else None, dict(summary()) if summary else {})
    check_finite(stats)
    return stats


def check_finite(stats: EpochStats) -> None:
    """Stop a diverged run with an error naming the epoch and the quantity."""
    numbers = {"loss_source": stats.loss_source, "loss_target": stats.loss_target, **stats.values}
    for key, value in numbers.items():
        if value is not None and not math.isfinite(value):
            raise FloatingPointError(f"training diverged at epoch {stats.epoch}: {key} = {value}")


def cycle_batches(n: int, batch: int, gen: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Endless batches of indices into ``n`` samples: reshuffle whenever a pass is exhausted."""
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n - batch + 1, batch):
            yield perm[start : start + batch]


def _reported(epoch: int, epochs: int, every: int) -> bool:
    """Whether ``epoch`` gets a progress line and its monitors: every ``every``-th, the first and the last."""
    return epoch % every == 0 or epoch in (1, epochs)


def _log_progress(name: str, stats: EpochStats, epochs: int, every: int, *, per_epoch: float) -> None:
    if not _reported(stats.epoch, epochs, every):
        return
    parts = [f"{name}: epoch {stats.epoch}/{epochs}", f"loss_source {stats.loss_source:.4f}"]
    if stats.loss_target is not None:
        parts.append(f"loss_target {stats.loss_target:.4f}")
    parts += [f"{k} {v:.4f}" for k, v in stats.values.items()]
    parts.append(f"{stats.seconds:.1f} s/epoch, ETA {_duration(per_epoch * (epochs - stats.epoch))}")
    log.info("  ".join(parts))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
