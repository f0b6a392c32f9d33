"""The cost plan of a workflow run: per rule (and method), its jobs, the SGD steps of each job, the
time of a step and the projected hours, before any work starts (``soseleto plan``, the Snakefile's
``onstart`` and ``results/benchmarks/cost_plan-<data sets>.{csv,md}``).

The jobs come from Snakemake's DAG when the plan runs inside Snakemake (``onstart``: the jobs it is
about to run), else from :func:`soseleto.cost.work.workflow_jobs`; what each job trains from
:func:`soseleto.cost.work.job_work`. The time of a step is measured (``step_cost-<device>...csv``,
written by ``soseleto bench`` / the ``step_cost`` rule: the plan of a config reads the one its
``bench`` section makes on the device, :func:`benchmarks`, never another config's) or, without it,
the documented default of :data:`ASSUMED_MS` (marked ``assumed``). A step's time is scaled from the
benchmark's batch to the rule's: linearly on a CPU; on a GPU never below the benchmark's (small
networks are bound by kernel launches there). Evaluation passes and data loading are not counted.

This module imports neither torch nor pandas: Snakemake calls it while it builds the DAG.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soseleto.config import WorkflowConfig
from soseleto.cost.gpus import default_device, gpu_layout
from soseleto.cost.work import BENCH_BATCH, JobKey, Sizes, Work, job_work, workflow_jobs
from soseleto.paths import share_cost_csv, step_cost_csv

# The time per step in ms (plain step, SOSELETO step) at :data:`BENCH_BATCH` assumed when no
# step-cost benchmark of the device is at hand. cuda: this project's H200 measurement (docs/algorithm.md,
# "Step cost"). cpu: `soseleto bench --quick --threads 2` on this project's 2-core CPU machine, LeNet and
# CIFAR-10 Quick (ResNet-18's plain step did not time reproducibly there: rounded up). mlp and
# bn_convnet were never timed: rough guesses.
ASSUMED_MS = {
    "cuda": {"mlp": (1.0, 3.0), "lenet": (2.2, 6.5), "cifar_quick": (2.6, 10.2), "bn_convnet": (3.0, 12.0),
             "resnet18": (9.3, 34.6)},
    "cpu": {"mlp": (2.0, 6.0), "lenet": (8.0, 15.0), "cifar_quick": (150.0, 220.0), "bn_convnet": (200.0, 300.0),
            "resnet18": (1000.0, 2100.0)},
}
OTHER_MINUTES = 0.5  # assumed per job that trains nothing (splits, tables, figures; a download takes longer)
NOTE = ("Steps: from the config and the set sizes; evaluation passes and data loading are not counted. Time per "
        "step: the config's step-cost benchmark when measured on this device (`step_cost-<device>...csv`, "
        "`soseleto bench`), else an assumed default "
        "(soseleto/cost/plan.py); scaled from the benchmark's batch to the rule's. Wall time: perfect packing of "
        "the jobs, never less than the longest job; a projection, not a promise (runs that evaluate every epoch, "
        "or share the cores, take longer: docs/workflow.md, \"Cost plan\").")
COLUMNS = ("stage", "rule", "jobs", "steps_per_job", "model", "batch", "ms_per_step", "time_from", "hours_per_job",
           "hours")


@dataclass
class Group:
    """The jobs of one line of the plan: their steps, and what they share (see :class:`Work`)."""

    stage: str
    rule: str
    kind: str
    model: str
    batch: int
    threads: int
    bilevel: bool
    steps: list[int] = field(default_factory=list)


def group(works: Iterable[Work]) -> list[Group]:
    """One :class:`Group` per plan line (``Work.row``), in the order of the lines' first jobs."""
    groups: dict[tuple[str, str], Group] = {}
    for w in works:
        g = groups.setdefault((w.stage, w.row), Group(w.stage, w.row, w.kind, w.model, w.batch, w.threads, w.bilevel))
        g.steps.append(w.steps)
    return list(groups.values())


# -- time per step -----------------------------------------------------------------------------------
def benchmarks(cfg: WorkflowConfig, device: str) -> tuple[str, str]:
    """The step-cost and the sharing benchmark that the plan of ``cfg`` on ``device`` reads: those
    that its ``bench`` section writes there (:func:`soseleto.paths.step_cost_csv`, ``share_cost_csv``)."""
    return step_cost_csv(device, cfg.bench), share_cost_csv(device)


def step_costs(device: str, bench_csv: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Per model: ms per step of each kind the benchmark timed (``plain``, ``soseleto``, and any
    ``<kind>_ms`` column) at :data:`BENCH_BATCH`, and ``from``, where they come from (``measured
    (<csv>, <threads> threads)`` for the rows of ``bench_csv`` timed on ``device``, else ``assumed``)."""
    if device not in ASSUMED_MS:
        raise ValueError(f"device={device!r}: the plan knows 'cpu' and 'cuda'")
    costs = {m: {"plain": plain, "soseleto": sos, "from": "assumed"} for m, (plain, sos) in ASSUMED_MS[device].items()}
    if bench_csv is not None and Path(bench_csv).is_file():
        with open(bench_csv, newline="") as f:
            for row in csv.DictReader(f):
                same_batch = (int(row["source_batch"]), int(row["target_batch"])) == BENCH_BATCH.get(row["model"])
                if row["device"].split(":")[0] == device and same_batch:
                    ms = {k.removesuffix("_ms"): float(v) for k, v in row.items()
                          if k.endswith("_ms") and v not in ("", None, "nan")}
                    costs[row["model"]] = {**ms, "from": f"measured ({Path(bench_csv).name}, {row['threads']} threads)"}
    return costs


def step_ms(g: Group, costs: dict[str, dict[str, Any]], device: str) -> tuple[float, str]:
    """ms per step of ``g``'s jobs and its origin: the benchmark's time of the same step kind, or,
    where the benchmark did not time that kind, of a SOSELETO step (a step that looks ahead on the
    target batch) or a plain one, scaled to the rule's batch (linearly on a CPU, never below the
    benchmark's time on a GPU). A ``bench`` step is one plain and one SOSELETO step of the
    benchmark itself."""
    cost = costs[g.model]
    if g.kind == "bench":
        return cost["plain"] + cost["soseleto"], cost["from"]
    sb, tb = BENCH_BATCH[g.model]
    kind = g.kind if g.kind in cost else ("soseleto" if g.bilevel else "plain")
    ref_n = sb if kind == "plain" else sb + tb
    ratio = g.batch / ref_n
    origin = cost["from"] if kind == g.kind else f"{cost['from']}, as a {kind} step"
    return cost[kind] * (ratio if device == "cpu" else max(1.0, ratio)), origin


def plan_rows(groups: Iterable[Group], costs: dict, device: str) -> list[dict[str, Any]]:
    """One row of :data:`COLUMNS` per line: hours = every job's steps × ms per step."""
    rows = []
    for g in groups:
        share_kind = "soseleto" if g.bilevel else "plain"  # the kinds python -m soseleto.cost.share measures
        if g.kind == "none":
            minutes = OTHER_MINUTES * len(g.steps)
            rows.append({"stage": g.stage, "rule": g.rule, "jobs": len(g.steps), "steps_per_job": "-", "model": "-",
                         "batch": "-", "ms_per_step": "-", "time_from": f"assumed {OTHER_MINUTES:g} min/job",
                         "hours_per_job": OTHER_MINUTES / 60, "hours": minutes / 60, "threads": g.threads,
                         "kind": share_kind, "total_steps": 0})
            continue
        ms, origin = step_ms(g, costs, device)
        lo, hi = min(g.steps), max(g.steps)
        rows.append({"stage": g.stage, "rule": g.rule, "jobs": len(g.steps),
                     "steps_per_job": str(lo) if lo == hi else f"{lo}-{hi}", "model": g.model, "batch": g.batch,
                     "ms_per_step": round(ms, 1), "time_from": origin, "hours_per_job": hi * ms / 3.6e6,
                     "hours": sum(g.steps) * ms / 3.6e6, "threads": g.threads, "kind": share_kind,
                     "total_steps": sum(g.steps)})
    return rows


def share_gains(device: str, jobs_per_gpu: int, share_csv: str | os.PathLike | None = None
                ) -> dict[tuple[str, str], tuple[float, str]]:
    """Per (model, step kind): how many times the work of one job ``jobs_per_gpu`` jobs on one card
    finish in the same time, and where that comes from: ``share_csv`` (``python -m
    soseleto.cost.share``) rows of ``device``, at the most jobs measured that do not exceed
    ``jobs_per_gpu``. Pairs not measured get no entry: the plan then assumes no gain (1)."""
    gains: dict[tuple[str, str], tuple[int, float, str]] = {}
    if device == "cpu" or jobs_per_gpu <= 1 or share_csv is None or not Path(share_csv).is_file():
        return {}
    with open(share_csv, newline="") as f:
        for row in csv.DictReader(f):
            k = int(row["jobs"])
            key = (row["model"], row["kind"])
            if row["device"].split(":")[0] == device and k <= jobs_per_gpu and k >= gains.get(key, (0,))[0]:
                gains[key] = (k, float(row["speedup"]), f"measured ({Path(share_csv).name}, {k} jobs)")
    return {key: (gain, origin) for key, (_, gain, origin) in gains.items()}


def wall_hours(rows: list[dict[str, Any]], device: str, *, cores: int, gpus: int = 1, jobs_per_gpu: int = 1,
               gains: dict[tuple[str, str], tuple[float, str]] | None = None) -> float:
    """Projected wall time: on a CPU, each rule's jobs share ``cores`` (``cores // threads`` at once);
    on a GPU, ``jobs_per_gpu`` training jobs share each card (``--resources gpu=N``) while the others
    use the cores: a rule's hours shrink by the measured sharing gain (``gains``; 1 where not
    measured), and each job stretches by ``jobs_per_gpu / gain``. Never less than the longest job;
    dependencies between jobs are ignored."""
    gains = gains or {}
    if device == "cpu":
        total = sum(r["hours"] / max(1, cores // max(1, r["threads"])) for r in rows)
        return max(total, max((r["hours_per_job"] for r in rows), default=0.0))
    total, longest = 0.0, 0.0
    for r in rows:
        if r["model"] == "-":
            longest = max(longest, r["hours_per_job"])
            continue
        gain = gains.get((r["model"], r["kind"]), (1.0, ""))[0]
        total += r["hours"] / gain
        stretch = max(1.0, jobs_per_gpu / gain) if r["jobs"] > 1 else 1.0  # a lone job has the card to itself
        longest = max(longest, r["hours_per_job"] * stretch)
    return max(total / max(1, gpus), longest)


def plan(cfg: WorkflowConfig, *, device: str, cores: int, gpus: int = 1, bench_csv: str | os.PathLike | None = None,
         results: str | os.PathLike = "results", jobs: list[JobKey] | None = None, jobs_per_gpu: int = 1,
         share_csv: str | os.PathLike | None = None) -> dict[str, Any]:
    """The cost plan of ``jobs`` (``(rule, wildcards)``; default: every job of ``snakemake all``
    under ``cfg``): ``rows`` (:func:`plan_rows`) and the totals. ``jobs_per_gpu`` training jobs
    share each card, at the gains measured in ``share_csv`` (:func:`share_gains`)."""
    sizes = Sizes(cfg, results)
    works = [w for rule, wildcards in (workflow_jobs(cfg) if jobs is None else jobs)
             for w in job_work(cfg, rule, wildcards, sizes, cores=cores)]
    rows = plan_rows(group(works), step_costs(device, bench_csv), device)
    training = [r for r in rows if r["model"] != "-" and not r["rule"].startswith("step_cost")]
    gains = share_gains(device, jobs_per_gpu, share_csv)
    used = sorted({gains[k][1] for k in gains if any((r["model"], r["kind"]) == k for r in training)})
    return {"rows": rows, "device": device, "cores": cores, "gpus": gpus, "jobs_per_gpu": jobs_per_gpu,
            "share_from": "; ".join(used) or ("assumed: no gain" if jobs_per_gpu > 1 else "-"),
            "jobs": sum(r["jobs"] for r in rows if not r["rule"].startswith("step_cost (")) + any(
                r["rule"].startswith("step_cost (") for r in rows),
            "training_jobs": sum(r["jobs"] for r in training), "steps": sum(r["total_steps"] for r in training),
            "hours": sum(r["hours"] for r in rows),
            "wall_hours": wall_hours(rows, device, cores=cores, gpus=gpus, jobs_per_gpu=jobs_per_gpu, gains=gains)}


# -- the table ---------------------------------------------------------------------------------------
def render_markdown(result: dict[str, Any], *, source: str = "") -> str:
    """The plan as a markdown table with a total and the projected wall time."""
    head = ["stage", "rule", "jobs", "steps per job", "model", "samples per step", "ms per step", "time per step from",
            "hours per job", "hours, all jobs"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in result["rows"]:
        cells = [r["stage"], r["rule"], r["jobs"], r["steps_per_job"], r["model"], r["batch"], r["ms_per_step"],
                 r["time_from"], _hours(r["hours_per_job"]), _hours(r["hours"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    k = result.get("jobs_per_gpu", 1)
    where = (f"{result['cores']} CPU cores" if result["device"] == "cpu"
             else f"{result['gpus']} GPU(s), training jobs one at a time per GPU" if k <= 1
             else f"{result['gpus']} GPU(s), {k} training jobs side by side per GPU (sharing gain: "
                  f"{result['share_from']})")
    total = (f"**Total{source}:** {result['jobs']} jobs, {result['training_jobs']} of them training "
             f"({result['steps']:,} SGD steps): {_hours(result['hours'])} hours of device time, about "
             f"**{_hours(result['wall_hours'])} hours** of wall time on {where} (device {result['device']}).")
    lines += ["", total, "", NOTE]
    return "\n".join(lines) + "\n"


def write_plan(result: dict[str, Any], out_csv: str | os.PathLike, out_md: str | os.PathLike, *,
               config: Any = None) -> None:
    """``out_csv`` (one row per rule, :data:`COLUMNS`), ``out_md`` (the table) and their provenance."""
    from soseleto.io import atomic_path, base_provenance, write_json, write_markdown

    prov = base_provenance(config, **{k: result[k] for k in ("device", "cores", "gpus", "jobs_per_gpu", "share_from",
                                                              "jobs", "training_jobs", "hours", "wall_hours")})
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["rows"])
    write_json(prov, f"{out_csv}.provenance.json")
    write_markdown(render_markdown(result), out_md, prov=prov)


def _hours(h: float) -> str:
    return f"{h:.3f}" if h < 0.1 else (f"{h:.1f}" if h < 100 else f"{h:,.0f}")


def write_workflow_plan(cfg: WorkflowConfig, bench_csv: str, outputs: Any, config: Any, cores: int,
                        gpu_slots: int | None = None) -> None:
    """Rule ``cost_plan``: the plan of ``snakemake all`` under ``cfg`` into ``outputs.csv`` and ``outputs.md``."""
    device = default_device(cfg.device)
    result = plan(cfg, device=device, cores=cores, bench_csv=bench_csv, share_csv=benchmarks(cfg, device)[1],
                  **gpu_layout(gpu_slots))
    write_plan(result, outputs.csv, outputs.md, config=config)


def show_pending(cfg: WorkflowConfig, dag: Any, *, cores: int, gpu_slots: int | None = None) -> None:
    """The Snakefile's ``onstart``: print the plan of the jobs Snakemake is about to run (``dag``:
    its DAG; ``gpu_slots``: its ``--resources gpu``) to stderr. Advice only: an error here is
    printed, never raised."""
    import sys

    try:
        jobs = [(job.rule.name, dict(job.wildcards.items())) for job in dag.needrun_jobs()]
        device = default_device(cfg.device)
        bench_csv, share_csv = benchmarks(cfg, device)
        result = plan(cfg, device=device, cores=cores, bench_csv=bench_csv, jobs=jobs, share_csv=share_csv,
                      **gpu_layout(gpu_slots))
        if result["rows"]:
            print("Cost plan of the jobs to run (soseleto plan):\n" + render_markdown(result), file=sys.stderr)
    except Exception as err:  # noqa: BLE001  (a plan is advice: it never stops the run)
        print(f"soseleto: no cost plan ({type(err).__name__}: {err})", file=sys.stderr)


def load_config(configfiles: Iterable[str | os.PathLike] = (), *, base: str | os.PathLike = "config/config.yaml"
                ) -> tuple[WorkflowConfig, dict]:
    """``base`` updated by each of ``configfiles`` with Snakemake's own merge (as ``snakemake
    --configfile`` does); the typed config and the merged mapping."""
    import yaml
    from snakemake.utils import update_config

    from soseleto.config import workflow_config

    if not Path(base).is_file():
        raise FileNotFoundError(f"{base}: not found (run from the repository root)")
    mapping = yaml.safe_load(Path(base).read_text()) or {}
    for path in configfiles:
        update_config(mapping, yaml.safe_load(Path(path).read_text()) or {})
    return workflow_config(mapping), mapping
