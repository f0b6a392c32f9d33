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
lines with an ETA, per-epoch monitors (e.g. test accuracy), the history, checkpoints that
resume exactly, and stopping at a step boundary on SIGTERM / SIGINT with the position inside the
epoch saved, so that a job killed by a time limit resumes where it stopped.
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
from soseleto.core.stop import StopRequest, stop_requests
from soseleto.io import no_space

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

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The images ``x[idx]`` of each index batch in ``chunks``, in order: what the loop asks of a
        source, which a set streamed from files (:class:`soseleto.data.stream.StreamedImages`) also answers."""
        return (self.x[idx] for idx in chunks)


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
    batches unless ``target`` is ``None``); return the history of every epoch. ``source`` is a
    :class:`Labeled` or a set streamed from files (:class:`soseleto.data.stream.StreamedImages`):
    anything with ``len``, labels ``y``, ``to(device)`` and ``batches(index batches)``.

    ``checkpoint``: the resumable state is saved there atomically every ``schedule.checkpoint_every``
    epochs and at the end, and resumed from when it exists; it must have been written for the same
    ``identity`` (required with ``checkpoint``: the configs, seed and data that define the run). A
    resumed run returns the history of all its epochs, those before the interruption included.
    ``monitors`` (e.g. test accuracy) are evaluated after the epochs that get a progress line --
    every ``schedule.log_every``-th, the first and the last -- and recorded under their names in
    those epochs' stats; ``on_epoch`` is called with each epoch's stats.

    SIGTERM or SIGINT during the run stops it at the next step boundary: the state, with the
    position inside the epoch, is saved to ``checkpoint`` (nothing is saved without one) and
    :class:`soseleto.core.stop.Stopped` is raised (exit status 143 / 130 if uncaught). Re-run with
    the same arguments, the run continues from that step and ends bit-identical to an
    uninterrupted one.
    """
    if checkpoint is not None and identity is None:
        raise ValueError("a checkpoint needs the identity of the run it belongs to")
    device = torch.device(device)
    source = source.to(device)
    target = None if target is None else target.to(device)
    run = _Run(method, checkpoint, identity, name, schedule.epochs, device=device)
    if checkpoint is not None and os.path.exists(checkpoint):
        run.resume()
    started, resumed = time.perf_counter(), len(run.history)
    with stop_requests() as stop:
        while len(run.history) < schedule.epochs:
            stats, begun = _epoch(run, source, target, schedule, seed=seed, device=device, stop=stop)
            if _reported(stats.epoch, schedule.epochs, schedule.log_every):
                for key, fn in (monitors or {}).items():
                    stats.values[key] = float(fn())
            stats.seconds = time.perf_counter() - begun
            run.history.append(stats)
            _log_progress(name, stats, schedule.epochs, schedule.log_every,
                          per_epoch=(time.perf_counter() - started) / (len(run.history) - resumed))
            if checkpoint is not None and (stats.epoch % schedule.checkpoint_every == 0 or
                                           stats.epoch == schedule.epochs):
                run.save(None)
            if on_epoch is not None:
                on_epoch(stats)
        if stop:  # the signal came during the last steps: the state is saved, but the caller must stop too
            run.halt(stop, None)
    return run.history


def runtime(device: torch.device | str, method: Any = None) -> dict[str, Any]:
    """What changes a run's numbers besides its settings, seed and data, saved with its state: the
    device (a GPU by its name), torch's CPU threads on a CPU (the reductions of a convolution are
    split by thread), the floating dtypes of ``method``'s state and the deterministic-algorithms flag."""
    device = torch.device(device)
    dtypes: set[str] = set()

    def walk(obj: Any) -> None:
        if torch.is_tensor(obj):
            if obj.is_floating_point():
                dtypes.add(str(obj.dtype).removeprefix("torch."))
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(method.state_dict() if method is not None else None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return {"device": name, "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "dtypes": sorted(dtypes), "deterministic": torch.are_deterministic_algorithms_enabled()}


def runtime_mismatch(saved: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """``''`` when a state saved under ``saved`` (:func:`runtime`; ``None``: saved before it was
    recorded) may resume under ``now``, else what differs: ``threads 1 (now 2), ...``."""
    if not isinstance(saved, dict):
        return ""
    keys = sorted(set(saved) | set(now))
    return ", ".join(f"{k} {_show(saved.get(k))} (now {_show(now.get(k))})" for k in keys if saved.get(k) != now.get(k))


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@dataclass
class _Position:
    """Where a run stopped inside an epoch: the steps done, the device sums of their
    ``(loss_source, loss_target)`` and the seconds they took."""

    step: int
    sums: torch.Tensor
    seconds: float

    def record(self) -> dict[str, Any]:
        return {"step": self.step, "sums": self.sums.detach().cpu().clone(), "seconds": self.seconds}


@dataclass
class _Run:
    """A run's history and where it resumes, and how to save or stop it."""

    method: Method
    checkpoint: str | os.PathLike | None
    identity: Any
    name: str
    epochs: int
    history: list[EpochStats] = field(default_factory=list)
    position: _Position | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    saved: int | None = None  # epochs done in the state last saved to (or resumed from) the checkpoint

    def resume(self) -> None:
        device, path = self.device, os.fspath(self.checkpoint)
        state = load_checkpoint(path, config=self.identity, map_location=device)
        differs = runtime_mismatch(state.get("runtime"), runtime(device, self.method))
        if differs:
            raise ValueError(f"{path!r} holds a run started with {differs}: the numbers depend on these, so resuming "
                             "it here would match neither run; run it again as it started, or delete the file to "
                             "start afresh")
        try:
            self.method.load_state_dict(state)
            self.history = [EpochStats.from_record(r) for r in state["history"]]
            saved = state.get("position")  # absent in checkpoints written at epoch ends only
            if saved is not None:
                self.position = _Position(int(saved["step"]), saved["sums"].to(device), float(saved["seconds"]))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
            raise ValueError(f"{path!r} does not hold a state of this run ({type(err).__name__}: {err}); delete it "
                             "to start afresh") from None
        self.saved = len(self.history)
        step = f" step {self.position.step}" if self.position else ""
        log.info("%s: resumed from %s at epoch %d%s", self.name, path, len(self.history) + 1, step)

    def save(self, position: _Position | None) -> None:
        """Save the state (atomically: a failed save keeps the previous file); a full disk is an
        ``OSError`` that says which state the kept file holds."""
        state = {**self.method.state_dict(), "epoch": len(self.history), "history": [h.record() for h in self.history],
                 "position": None if position is None else position.record(),
                 "runtime": runtime(self.device, self.method)}
        try:
            save_checkpoint(state, self.checkpoint, config=self.identity)
        except OSError as err:
            if not no_space(err):
                raise
            kept = (f"the state saved after epoch {self.saved} is kept there" if self.saved is not None
                    else "no earlier state was saved")
            raise OSError(err.errno, f"no space left on the device while saving the state of {self.name} after epoch "
                          f"{len(self.history)} to {os.fspath(self.checkpoint)!r}; {kept}: free some space and run "
                          "the same command again to resume from it") from err
        self.saved = len(self.history)

    def halt(self, stop: StopRequest, position: _Position | None) -> None:
        """Save the state at ``position`` (``None``: an epoch boundary), log where, and raise ``Stopped``."""
        if len(self.history) < self.epochs:
            where = f"at epoch {len(self.history) + 1} step {0 if position is None else position.step}"
        else:
            where = f"after its last epoch ({self.epochs})"
        if self.checkpoint is None:
            what = "no checkpoint was given, so no state was saved"
        else:
            self.save(position)
            what = f"state saved to {os.fspath(self.checkpoint)}, rerun to resume"
        message = f"{self.name}: stopped by {stop.name} {where}; {what}"
        log.warning(message)
        raise stop.stopped(message)


def _epoch(run: _Run, source: Labeled, target: Labeled | None, schedule: Schedule, *, seed: int,
           device: torch.device, stop: StopRequest) -> tuple[EpochStats, float]:
    """The next epoch of ``run`` (from its saved position, if any), stopped at a step boundary when
    ``stop`` is set; its stats and its start (``time.perf_counter()``, earlier by the seconds spent
    before a stop)."""
    start, run.position = run.position, None
    begun = time.perf_counter() - (0.0 if start is None else start.seconds)

    def boundary(step: int, sums: torch.Tensor) -> None:
        if stop:
            run.halt(stop, _Position(step, sums, time.perf_counter() - begun) if step else None)

    sums, n_steps = _one_epoch(run.method, source, target, schedule, seed=seed, epoch=len(run.history),
                               device=device, start=start, boundary=boundary)
    return _stats(run.method, len(run.history) + 1, sums / n_steps, has_target=target is not None), begun


def _one_epoch(method: Method, source: Labeled, target: Labeled | None, schedule: Schedule, *, seed: int,
               epoch: int, device: torch.device, start: _Position | None = None,
               boundary: Callable[[int, torch.Tensor], None] | None = None) -> tuple[torch.Tensor, int]:
    """One pass over ``source``; returns the sums of ``(loss_source, loss_target)`` (on the device) and the steps.

    ``start``: continue a pass stopped after ``start.step`` steps with those steps' sums; the pass's
    batches are drawn again from the same generator and the done ones skipped. ``boundary(step,
    sums)`` is called before each step (it may raise to stop the pass)."""
    gen = generator(seed * 1_000_003 + epoch)
    targets = None
    if target is not None:
        targets = cycle_batches(len(target), min(schedule.target_batch, len(target)), gen, device)
    perm = torch.randperm(len(source), generator=gen).to(device)  # drawn before the first target batch
    done = 0 if start is None else start.step
    sums = torch.zeros(2, device=device) if start is None else start.sums.to(device)
    chunks = list(perm.split(schedule.source_batch))
    images = source.batches(chunks[done:])  # a streamed source decodes only the steps still to do
    for step, idx in enumerate(chunks):
        tidx = None if targets is None else next(targets)
        if step < done:
            continue  # its target batch was drawn all the same: the cycle stays where the full pass has it
        if boundary is not None:
            boundary(step, sums)
        xs = next(images)
        xt = yt = None
        if tidx is not None:
            xt, yt = target.x[tidx], target.y[tidx]
        loss_s, loss_t = method.step(xs, source.y[idx], idx, xt, yt)
        sums += torch.stack([loss_s, loss_s.new_zeros(()) if loss_t is None else loss_t])
    return sums, len(chunks)


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
