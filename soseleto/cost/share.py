"""Benchmark of several training jobs sharing one device: the aggregate steps per second of k
processes that train at once, against one alone.

    python -m soseleto.cost.share --models lenet cifar_quick --jobs 1 2 4 8 --seconds 10

Small networks use a sliver of a GPU: one job's steps are bound by kernel launches and Python,
not arithmetic, so k jobs side by side on one card can finish nearly k times the work in the same
time, until the card (or the CPU cores that feed it) is full. For each model, step kind (``plain``
or ``soseleto``, :mod:`soseleto.cost.bench`'s steps on random data of its shapes) and number of jobs k,
it starts k fresh processes (``--threads`` torch threads each) on the same device, lets each warm
up, starts them together and counts the steps each completes in ``--seconds``. Columns:

* ``steps_per_s``: the sum over the k jobs; ``speedup``: that sum over the one-job value, the
  factor by which k jobs per card shorten a batch of jobs (``soseleto plan --jobs-per-gpu``);
* ``slowdown``: how much longer each job takes than alone (k / speedup);
* ``peak_mb``: the largest per-job memory: torch's reserved GPU memory on CUDA (the CUDA context,
  several hundred MiB per process, comes on top), the resident set size on a CPU.

On a CPU the jobs compete for the cores: the speedup there says how many one-thread jobs the
machine runs side by side. SIGTERM or SIGINT stops it between runs (exit 143 / 130, nothing written).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import time

import pandas as pd

from soseleto.config import BenchConfig
from soseleto.paths import share_cost_csv

log = logging.getLogger(__name__)
BENCH_MODELS = BenchConfig.__dataclass_fields__["models"].metadata["choices"]

KINDS = ("plain", "soseleto")
WARMUP = 3  # steps before the timed window (allocator, cuDNN autotuning, lazy initialisation)


def worker(model: str, kind: str, device: str, seconds: float, seed: int) -> dict:
    """One job: warm up, say ``ready``, wait for ``go`` on stdin, then step for ``seconds``."""
    import torch

    from soseleto.cost.bench import SETTINGS, Case

    dev = torch.device(device)
    case = Case(SETTINGS[model], dev, seed=seed)
    if kind == "plain":
        step = case.plain_step
    else:
        tr = case.trainer()
        step = lambda: tr.step(case.xs, case.ys, case.idx, case.xt, case.yt)  # noqa: E731
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    for _ in range(WARMUP):
        step()
    sync()
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":  # the parent is gone or gave up
        return {}
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if dev.type == "cuda" and steps % 20 == 0:
            sync()  # keep the launch queue from running far ahead of the clock
    sync()
    elapsed = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_reserved(dev) / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"steps": steps, "seconds": elapsed, "peak_mb": peak}


def run_level(model: str, kind: str, device: str, jobs: int, *, seconds: float, threads: int) -> dict:
    """Start ``jobs`` workers, release them together, and sum their steps per second."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "soseleto.cost.share", "--worker", model, kind, device, str(seconds)]
    procs = [subprocess.Popen(cmd + [str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for i in range(jobs)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {model} {kind} job on {device} did not start (exit status {p.wait()})")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    rate = sum(r["steps"] / r["seconds"] for r in results)
    return {"model": model, "kind": kind, "device": device, "threads": threads, "jobs": jobs,
            "steps": sum(r["steps"] for r in results), "steps_per_s": rate,
            "peak_mb": max(r["peak_mb"] for r in results)}


def measure(models, *, jobs, kinds=KINDS, device: str = "auto", seconds: float, threads: int = 1,
            stop=None) -> pd.DataFrame:
    """One row per (model, kind, jobs); ``speedup`` and ``slowdown`` against the same model and kind
    with one job (measured first, whatever ``jobs`` says)."""
    import torch

    from soseleto.cost.bench import SETTINGS, check_stop
    from soseleto.core.device import resolve_device

    dev = resolve_device(device)  # one named card: "cuda" alone could differ between the jobs' processes
    dev = str(dev) if dev.type == "cpu" or dev.index is not None else f"cuda:{torch.cuda.current_device()}"
    rows = []
    for model in models:
        if model not in SETTINGS:
            raise ValueError(f"model={model!r} has no benchmark setting; choose from {sorted(SETTINGS)}")
        for kind in kinds:
            alone = None
            for k in sorted({1, *jobs}):
                check_stop(stop, f"before {k} {model} {kind} job(s)")
                row = run_level(model, kind, dev, k, seconds=seconds, threads=threads)
                alone = alone or row["steps_per_s"]
                row["speedup"] = row["steps_per_s"] / alone
                row["slowdown"] = k / row["speedup"]
                log.info("%s %s, %d job(s) on %s: %.1f steps/s in all, x%.2f the work of one job, each x%.2f slower; "
                         "peak %.0f MiB per job", model, kind, k, dev, row["steps_per_s"], row["speedup"],
                         row["slowdown"], row["peak_mb"])
                rows.append(row)
    return pd.DataFrame(rows)


def run(cfg: BenchConfig, device: str = "auto", *, out: str | os.PathLike | None = None, kinds=KINDS,
        threads: int = 1) -> pd.DataFrame:
    """The ``share_cost`` rule and this module's command: :func:`measure` the models of ``cfg`` at
    ``cfg.share_jobs`` jobs for ``cfg.share_seconds`` each and write the rows to ``out`` (default:
    :func:`soseleto.paths.share_cost_csv` of the device). SIGTERM / Ctrl-C stops it between runs
    (exit 143 / 130), writing nothing."""
    from soseleto.core.device import resolve_device
    from soseleto.core.stop import stop_requests
    from soseleto.cost.bench import check_stop
    from soseleto.io import provenance, write_csv

    out = share_cost_csv(str(resolve_device(device))) if out is None else out

    with stop_requests() as stop:
        df = measure(cfg.models, jobs=cfg.share_jobs, kinds=kinds, device=device, seconds=cfg.share_seconds,
                     threads=threads, stop=stop)
        check_stop(stop, "after the last run")
    write_csv(df, out, prov=provenance({"bench": cfg}, device=device, kinds=list(kinds), threads=threads))
    return df


def main(argv=None) -> int:
    """``python -m soseleto.cost.share``: flags over :class:`soseleto.config.BenchConfig`'s defaults."""
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        model, kind, device, seconds, seed = sys.argv[2:7]
        print(json.dumps(worker(model, kind, device, float(seconds), int(seed))), flush=True)
        return 0
    from soseleto import logs

    d = BenchConfig()
    p = argparse.ArgumentParser(prog="python -m soseleto.cost.share", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", choices=BENCH_MODELS, default=list(d.models), help="networks (default: %(default)s)")
    p.add_argument("--jobs", nargs="+", type=int, default=list(d.share_jobs),
                   help="jobs side by side (default: %(default)s)")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="steps (default: %(default)s)")
    p.add_argument("--device", default="auto", help="one device all jobs share (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=d.share_seconds,
                   help="timed window per run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default: %(default)s)")
    p.add_argument("--out", help=f"CSV (default: {share_cost_csv('<device>')})")
    args = p.parse_args(argv)
    if min(args.jobs) < 1 or args.seconds <= 0 or args.threads < 1:
        p.error(f"--jobs {args.jobs}, --seconds {args.seconds} and --threads {args.threads} must be positive")
    if not logging.getLogger().handlers:  # a workflow job has set up its log file already
        logs.setup()
    cfg = dataclasses.replace(d, models=tuple(args.models), share_jobs=tuple(args.jobs), share_seconds=args.seconds)
    df = run(cfg, args.device, out=args.out, kinds=args.kinds, threads=args.threads)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
