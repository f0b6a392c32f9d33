"""Cost of one SOSELETO step relative to one plain SGD step on the source batch.

``soseleto bench`` (or ``python -m soseleto bench``; :func:`run`, with :class:`soseleto.config.BenchConfig`) times, in one process and interleaved, a plain
step (forward, backward and SGD step of the source network on the source batch) and a full
:meth:`soseleto.core.soseleto.Soseleto.step` (target pass, alpha products, source step, alpha update),
on random data of each model's shapes, and writes their medians and ratio to a CSV file. With
``--load N`` (default 1) it times both again with N CPU-heavy single-threaded processes beside it
(:func:`busy`), as on a shared machine, into ``plain_ms_loaded``, ``soseleto_ms_loaded`` and
``ratio_loaded``. What such a neighbour does to the ratio is thread oversubscription: with more
torch threads than idle cores, every parallel region of a step waits for its slowest thread, and
a SOSELETO step has more (and smaller) regions than a plain one. One thread per job keeps the ratio
(docs/algorithm.md, "Step cost").

Before timing, each model's alpha update is checked against the slow per-sample reference
(:func:`soseleto.core.forward_mode.reference_alignment`) in float64 on the first ``CHECK_BATCH`` samples; a
relative error above ``CHECK_TOL`` stops the benchmark. SIGTERM or SIGINT stops it at the next
repetition or phase, with exit status 143 / 130 and no file written.

Peak memory (MiB) is, for each step type, the bytes of the tensors it holds between steps
(parameters, their gradients, optimiser state, alpha, its batches) plus the largest rise of live
tensor bytes during one steady-state step above that level -- what a job needs for that step, the
same quantity on every device:

* CUDA: the rise is ``max_memory_allocated`` minus ``memory_allocated`` before the step.
* CPU: the rise is read from ``torch.profiler`` (``profile_memory``): every allocation of torch's
  CPU allocator is reported with the running total of bytes allocated since profiling started.
  Process RSS (``getrusage``) is not used: it is monotone over a process's life and counts pages
  the allocator has freed but not returned, so it mixes the two step types and the warm-up.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn.functional as F

from soseleto.config import BenchConfig, PairedConfig, PeerConfig, SoseletoConfig
from soseleto.config import methods as registry
from soseleto.core.device import resolve_device
from soseleto.core.forward_mode import reference_alignment
from soseleto.core.models import build
from soseleto.core.rng import generator
from soseleto.core.soseleto import Soseleto, optimizer_state_to
from soseleto.core.stop import StopRequest, stop_requests
from soseleto.io import provenance, write_csv
from soseleto.methods.correction import union_method
from soseleto.methods.joint import Joint
from soseleto.methods.l2rw import L2RW
from soseleto.methods.mwnet import MWNet
from soseleto.paths import step_cost_csv

log = logging.getLogger(__name__)

CHECK_BATCH = 8  # source samples in the alpha check (the reference does one backward per sample)
CHECK_TOL = 1e-6  # max relative error of the alpha change, float64
# compiled steps are timed only if their error against float64 eager steps is at most COMPILE_FACTOR times
# that of float32 eager steps, or COMPILE_FLOOR (other fusions round differently, not by orders of magnitude)
COMPILE_FACTOR, COMPILE_FLOOR = 10.0, 1e-4
LR_P, MOMENTUM = 1e-3, 0.9
# the peers' steps (the registry's peer rows), timed beside the plain and the SOSELETO step (columns
# <step>_ms, <step>_ratio, ...); a peer added to the registry without a step in Case.peer_step fails the bench
PEER_STEPS = registry.names("noisy", rows=("peer",))


@dataclass(frozen=True)
class Setting:
    """One benchmarked network: input shape (C, H, W), batch sizes in samples, head mode."""

    model: str
    in_shape: tuple[int, ...]
    source_batch: int
    target_batch: int
    shared: bool  # noisy-label mode (one classifier) or transfer mode (separate target head)
    n_classes: int = 10


SETTINGS = {
    "lenet": Setting("lenet", (1, 28, 28), 32, 10, shared=False),  # SVHN -> MNIST transfer
    "cifar_quick": Setting("cifar_quick", (3, 32, 32), 256, 32, shared=True),  # noisy CIFAR-10
    "resnet18": Setting("resnet18", (3, 32, 32), 128, 32, shared=True),  # BatchNorm network
}


class Case:
    """Identical initial networks for the plain and the SOSELETO step, and one batch of each set."""

    def __init__(self, s: Setting, device: torch.device, *, source_batch=None, seed=0):
        b_s = source_batch or s.source_batch
        features, heads = build(s.model, s.in_shape, [s.n_classes] * (1 if s.shared else 2), seed=seed)
        head, target_head = heads[0], None if s.shared else heads[1]
        nets = [m.to(device) for m in (features, head)]
        self.plain = copy.deepcopy(nets)
        self.plain_opt = torch.optim.SGD([p for m in self.plain for p in m.parameters()], lr=LR_P, momentum=MOMENTUM)
        self.nets = (*nets, None if target_head is None else target_head.to(device))
        g = generator(seed + 1)
        self.xs = torch.randn(b_s, *s.in_shape, generator=g).to(device)
        self.ys = torch.randint(0, s.n_classes, (b_s,), generator=g).to(device)
        self.xt = torch.randn(s.target_batch, *s.in_shape, generator=g).to(device)
        self.yt = torch.randint(0, s.n_classes, (s.target_batch,), generator=g).to(device)
        self.n_source, self.n_classes = 10 * b_s, s.n_classes
        self.idx = torch.randperm(self.n_source, generator=g)[:b_s].to(device)
        self.device = device

    def trainer(self, **cfg) -> Soseleto:
        features, head, target_head = self.nets
        conf = SoseletoConfig(lr_p=LR_P, momentum=MOMENTUM, weight_decay=0.0, shared_classifier=target_head is None,
                              source_batch=len(self.ys), target_batch=len(self.yt), **cfg)
        return Soseleto(features, head, target_head, n_source=self.n_source, cfg=conf, device=self.device)

    def plain_state(self) -> list[torch.Tensor]:
        params = [p for m in self.plain for p in m.parameters()]
        return _with_state(params, self.plain_opt) + [self.xs, self.ys]

    def plain_step(self) -> None:
        features, head = self.plain
        self.plain_opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(features(self.xs)), self.ys).backward()
        self.plain_opt.step()

    def peer_step(self, kind: str) -> Callable[[], Any]:
        """One step of peer method ``kind`` (:data:`PEER_STEPS`) on copies of the initial networks,
        with the source network's head (the peers train one network, as in noisy-label mode)."""
        features, head = copy.deepcopy(self.nets[:2])
        cfg = PairedConfig(lr_p=LR_P, momentum=MOMENTUM, weight_decay=0.0, source_batch=len(self.ys),
                           target_batch=len(self.yt))
        batch = (self.xs, self.ys, self.idx, self.xt, self.yt)
        if kind == "joint":
            method = Joint(features, head, cfg, target_weight=PeerConfig().target_weight)
        elif kind == "l2rw":
            method = L2RW(features, head, cfg, n_source=self.n_source, device=self.device)
        elif kind == "mwnet":
            method = MWNet(features, head, cfg, n_source=self.n_source, device=self.device)
        elif kind in ("glc", "noise_layer"):  # a step on source + target: every other sample trusted
            trusted = torch.arange(self.n_source, device=self.device) % 2 == 0
            method = union_method(kind, features, head, cfg, PeerConfig(), trusted=trusted, n_classes=self.n_classes)
            batch = batch[:3]
        else:
            raise ValueError(f"step {kind!r} has no benchmark; choose one of {('plain', 'soseleto', *PEER_STEPS)}")
        return lambda: method.step(*batch)


def alpha_check(s: Setting, device: torch.device) -> float:
    """Max relative error of one step's alpha change against the per-sample reference (float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # alpha too
    try:
        return _alpha_check(s, device)
    finally:
        torch.set_default_dtype(old)


def _alpha_check(s: Setting, device: torch.device) -> float:
    case = Case(s, device, source_batch=min(CHECK_BATCH, s.source_batch))
    features, head, target_head = copy.deepcopy(case.nets)
    tgt = head if target_head is None else target_head
    loss_t = F.cross_entropy(tgt(features(case.xt)), case.yt)
    names = [n for n, _ in features.named_parameters()]
    g = torch.autograd.grad(loss_t, list(features.parameters()))
    ref = reference_alignment(features, head, case.xs, case.ys, dict(zip(names, g)))  # (B,)
    # lr_alpha chosen so the largest change is 0.25: no clipping from alpha_init = 0.5
    scale = LR_P / len(case.ys)
    lr_alpha = 0.25 / (scale * float(ref.abs().max()))
    tr = case.trainer(lr_alpha=lr_alpha, alpha_init=0.5)
    tr.step(case.xs, case.ys, case.idx, case.xt, case.yt)
    change = tr.alpha[case.idx].double() - 0.5
    expected = lr_alpha * scale * ref
    return float((change - expected).abs().max() / expected.abs().max())


def time_steps(s: Setting, device: torch.device, *, reps: int, warmup: int, stop: StopRequest | None = None,
               compile_mode: str | None = None, peers: tuple[str, ...] = ()
               ) -> tuple[dict[str, float], str, float, float]:
    """Median milliseconds of a plain step, a SOSELETO step and a step of each of ``peers``,
    interleaved on the same batches; the alignment method; and, with ``compile_mode``
    (``torch.compile``'s ``mode``; the plain and SOSELETO steps compiled, the first repetitions
    include the compilation), the compiled steps' :func:`compiled_error` (else NaN): beyond
    ``COMPILE_FACTOR`` times the eager steps' own (or ``COMPILE_FLOOR``) nothing is timed and the
    times are NaN. ``stop``: checked between repetitions (:func:`check_stop`)."""
    case = Case(s, device)
    tr = case.trainer()
    plain, sos = case.plain_step, lambda: tr.step(case.xs, case.ys, case.idx, case.xt, case.yt)
    err = eager_err = math.nan
    if compile_mode:
        plain, step = torch.compile(case.plain_step, mode=compile_mode), torch.compile(tr.step, mode=compile_mode)
        err, eager_err = compiled_error(case, tr, step, plain)
        if not err <= max(COMPILE_FACTOR * eager_err, COMPILE_FLOOR):  # timing wrong results would say nothing
            log.warning("%s: compiled steps land %.2g (relative to their change) from float64 eager steps, float32 "
                        "eager ones %.2g: more than %g times as far, so not timed", s.model, err, eager_err,
                        COMPILE_FACTOR)
            return {"plain": math.nan, "soseleto": math.nan}, tr.alignment, err, eager_err
        sos, warmup = (lambda: step(case.xs, case.ys, case.idx, case.xt, case.yt)), max(warmup, 3)  # recompiles
    steps = {"plain": plain, "soseleto": sos, **{kind: case.peer_step(kind) for kind in peers}}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rep in range(warmup + reps):
        check_stop(stop, f"while timing {s.model} (repetition {rep + 1} of {warmup + reps})")
        for name, fn in steps.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if rep >= warmup:
                times[name].append(1e3 * (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}, tr.alignment, err, eager_err


def compiled_error(case: Case, tr: Soseleto, step, plain) -> tuple[float, float]:
    """How far two steps taken by ``step`` / ``plain`` (the ``torch.compile``d ``tr.step`` and
    ``case.plain_step``) land from the same two steps taken eagerly in float64, and, for scale, how
    far two eager float32 steps land: each the largest difference over alpha, the SOSELETO
    parameters and the plain step's parameters, relative to the largest change the float64 steps
    made to that tensor. ``case`` and ``tr`` are left after the compiled steps; the second step runs
    with momentum and the running averages in use."""
    eager, ref = copy.deepcopy((case, tr)), _float64(*copy.deepcopy((case, tr)))
    before = [t.detach().clone() for t in _step_tensors(*ref)]
    for _ in range(2):
        for c, sos, pl in ((ref[0], ref[1].step, ref[0].plain_step), (eager[0], eager[1].step, eager[0].plain_step),
                           (case, step, plain)):
            sos(c.xs, c.ys, c.idx, c.xt, c.yt)
            pl()
    truth = _step_tensors(*ref)
    compiled_err = _relative_error(_step_tensors(case, tr), truth, before)
    return compiled_err, _relative_error(_step_tensors(*eager), truth, before)


def _relative_error(tensors, truth, before) -> float:
    worst = 0.0
    for t, r, b in zip(tensors, truth, before):
        change, diff = float((r - b).abs().max()), float((t.double() - r).abs().max())
        worst = max(worst, diff / change if change else (math.inf if diff else 0.0))
    return worst


def _float64(case: Case, tr: Soseleto) -> tuple[Case, Soseleto]:
    """``case`` and ``tr`` (copies) moved to float64 in place: networks, batches, alpha, optimiser state."""
    for m in case.plain:
        m.double()  # parameters keep their identity: the optimiser still holds them
    optimizer_state_to(case.plain_opt, torch.float64)
    case.xs, case.xt = case.xs.double(), case.xt.double()
    return case, tr.to_dtype(torch.float64)


def _step_tensors(case: Case, tr: Soseleto) -> list[torch.Tensor]:
    params = [p for group in tr.optimizer.param_groups for p in group["params"]]
    return [tr.alpha, *(p.detach() for p in params + [q for m in case.plain for q in m.parameters()])]


def peak_memory_mb(s: Setting, device: torch.device, kind: str) -> float:
    """Peak bytes of live tensors during one steady-state step of ``kind`` ('plain' or
    'soseleto'), in MiB: the tensors that step type holds between steps (parameters, gradients,
    optimiser state, alpha, its batches) plus the most the step adds on top of them."""
    case = Case(s, device)
    if kind == "plain":
        fn, held = case.plain_step, case.plain_state
        case.nets = None
    else:
        tr = case.trainer()
        fn, held = (lambda: tr.step(case.xs, case.ys, case.idx, case.xt, case.yt)), lambda: _trainer_state(tr, case)
        case.plain = case.plain_opt = None
    for _ in range(2):  # momentum buffers and gradients exist from here on
        fn()
    held_bytes = _storage_bytes(held())
    rise = [_added_peak_bytes(fn, device) for _ in range(2)][-1]  # the first profile has one-off allocations
    return (held_bytes + rise) / 2**20


def _added_peak_bytes(fn, device: torch.device) -> int:
    """The most that live tensor bytes rise above their level before ``fn()`` while it runs."""
    _sync(device)
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    # CPU: the profiler reports every allocation of torch's CPU allocator with the running total
    # of bytes allocated since profiling started (RSS would also count freed-but-cached pages and
    # is monotone over a process's life)
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # kineto's start/stop lines on every profile, unless asked for

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    stack, events = list(prof.profiler.kineto_results.experimental_event_tree()), []
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            events.append((event.start_time_ns, event.extra_fields.total_allocated, event.extra_fields.alloc_size))
    if not events:
        return 0
    events.sort()
    base = events[0][1] - events[0][2]  # the running total carries over from earlier profiles
    return max(total for _, total, _ in events) - base


def _storage_bytes(tensors) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if t is not None}
    return sum(storages.values())


def _trainer_state(tr: Soseleto, case: Case) -> list[torch.Tensor]:
    params = [p for group in tr.optimizer.param_groups for p in group["params"]]
    return _with_state(params, tr.optimizer) + [tr.alpha, case.xs, case.ys, case.idx, case.xt, case.yt]


def _with_state(params, optimizer) -> list[torch.Tensor]:
    """Parameters, their gradients and the optimiser's tensors."""
    out = [t for p in params for t in (p, p.grad)]
    out += [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    return out


# A CPU-heavy neighbour: single-threaded matrix products (compute and memory traffic), until its
# parent is gone -- so that a benchmark killed outright leaves no process spinning behind it.
_BUSY = """
import os, numpy as np
parent, a = os.getppid(), np.random.default_rng(0).random((256, 256))
while os.getppid() == parent:
    a = np.tanh(a @ a)
"""


@contextlib.contextmanager
def busy(n: int) -> Iterator[list[subprocess.Popen]]:
    """Run ``n`` CPU-heavy processes (one thread each) beside the caller while the block runs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY], env=env) for _ in range(n)]
    try:
        if procs:
            time.sleep(0.5)  # let them start spinning
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def check_stop(stop: StopRequest | None, where: str) -> None:
    """Raise :class:`soseleto.core.stop.Stopped` (exit status 143 / 130) when ``stop`` holds a
    signal: a benchmark cut short has nothing worth keeping, so nothing is written."""
    if stop:
        message = f"bench: stopped by {stop.name} {where}; nothing was written"
        log.warning(message)
        raise stop.stopped(message)


def measure(models, *, device="auto", reps: int, warmup: int, threads: int | None, load: int,
            compile_mode: str | None = None, stop: StopRequest | None = None) -> pd.DataFrame:
    """Check, time and measure each model in ``models``; one row per model.
    ``load``: the steps are timed again with that many CPU-heavy processes beside (:func:`busy`),
    into the ``*_loaded`` columns. ``compile_mode``: timed again compiled (``torch.compile``), into
    the ``*_compiled`` columns, if :func:`compiled_error` (``compile_max_rel_err``, against float64)
    is within ``COMPILE_FACTOR`` times that of the eager steps; else those columns are NaN.
    ``stop``: checked between the phases of each model and between timed repetitions."""
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for name in models:
        if name not in SETTINGS:
            raise ValueError(f"model={name!r} has no benchmark setting; choose from {sorted(SETTINGS)}")
        s = SETTINGS[name]
        check_stop(stop, f"before the alpha check of {name}")
        err = alpha_check(s, dev)
        if not err <= CHECK_TOL:
            raise RuntimeError(f"{name}: alpha update differs from the reference (max rel. error {err:.2e})")
        quiet, method, *_ = time_steps(s, dev, reps=reps, warmup=warmup, stop=stop, peers=PEER_STEPS)
        plain_ms, sos_ms = quiet["plain"], quiet["soseleto"]
        nan = {k: math.nan for k in quiet}
        loaded, compiled = (nan, None, math.nan, math.nan), (nan, None, math.nan, math.nan)
        if load:
            with busy(load):
                loaded = time_steps(s, dev, reps=reps, warmup=warmup, stop=stop, peers=PEER_STEPS)
        if compile_mode:
            compiled = time_steps(s, dev, reps=reps, warmup=warmup, stop=stop, compile_mode=compile_mode)
        check_stop(stop, f"before the memory measurement of {name}")
        plain_mb, sos_mb = peak_memory_mb(s, dev, "plain"), peak_memory_mb(s, dev, "soseleto")
        rows.append({
            "model": name, "device": str(dev), "threads": torch.get_num_threads(), "alignment": method,
            "source_batch": s.source_batch, "target_batch": s.target_batch, "reps": reps,
            "plain_ms": plain_ms, "soseleto_ms": sos_ms, "ratio": sos_ms / plain_ms, "load": load,
            "plain_ms_loaded": loaded[0]["plain"], "soseleto_ms_loaded": loaded[0]["soseleto"],
            "ratio_loaded": loaded[0]["soseleto"] / loaded[0]["plain"],
            "compile": compile_mode or "", "plain_ms_compiled": compiled[0]["plain"],
            "soseleto_ms_compiled": compiled[0]["soseleto"],
            "ratio_compiled": compiled[0]["soseleto"] / compiled[0]["plain"], "compile_max_rel_err": compiled[2],
            "eager_max_rel_err": compiled[3],
            "plain_peak_mb": plain_mb, "soseleto_peak_mb": sos_mb, "mem_ratio": sos_mb / plain_mb,
            "alpha_check_max_rel_err": err,
            **{f"{k}_{col}": v for k in PEER_STEPS for col, v in (
                ("ms", quiet[k]), ("ratio", quiet[k] / plain_ms), ("ms_loaded", loaded[0][k]),
                ("ratio_loaded", loaded[0][k] / loaded[0]["plain"]))},
        })
        beside = f"; with {load} busy process(es) beside x{rows[-1]['ratio_loaded']:.2f}" if load else ""
        beside += (f"; compiled ({compile_mode}) plain {compiled[0]['plain']:.1f} ms, soseleto "
                   f"{compiled[0]['soseleto']:.1f} ms" if compile_mode else "")
        beside += "; " + ", ".join(f"{k} x{quiet[k] / plain_ms:.2f}" for k in PEER_STEPS)
        log.info("%s: plain %.1f ms, soseleto %.1f ms (x%.2f, %s)%s; peak %.0f / %.0f MiB (x%.2f); alpha err %.1e",
                 name, plain_ms, sos_ms, sos_ms / plain_ms, method, beside, plain_mb, sos_mb, sos_mb / plain_mb, err)
    return pd.DataFrame(rows)


def run(cfg: BenchConfig, device: str = "auto", *, out: str | os.PathLike | None = None,
        compile_mode: str | None = None) -> pd.DataFrame:
    """``soseleto bench`` and the ``step_cost`` rule: :func:`measure` the models of ``cfg`` on
    ``device`` (``cfg.quick``: 3 repetitions after 1 warm-up, else ``cfg.reps`` after 2) and write the
    rows to ``out`` (default: :func:`soseleto.paths.step_cost_csv` of the device and ``cfg``) with
    their provenance. SIGTERM / Ctrl-C stops it between repetitions (exit 143 / 130), writing nothing."""
    out = step_cost_csv(str(resolve_device(device)), cfg) if out is None else out
    reps, warmup = (3, 1) if cfg.quick else (cfg.reps, 2)
    with stop_requests() as stop:
        df = measure(cfg.models, device=device, reps=reps, warmup=warmup, threads=cfg.threads, load=cfg.load,
                     compile_mode=compile_mode, stop=stop)
        check_stop(stop, "after the last measurement")
    write_csv(df, out, prov=provenance({"bench": cfg}, device=device, compile=compile_mode, lr_p=LR_P,
                                       momentum=MOMENTUM, check_batch=CHECK_BATCH))
    return df


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
