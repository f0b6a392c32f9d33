"""The cost plan of a workflow run: per rule, its jobs, the SGD steps of each job, the time of a
step and the projected hours, before any work starts (``soseleto plan``, the Snakefile's
``onstart`` and ``results/benchmarks/cost_plan.{csv,md}``).

Steps come from the config: set sizes (from ``results/data/<tag>.json`` when a ``dataset`` job has
written it, else the known sizes of the torchvision sets, the ``y`` array of an ``.npz`` file or the
class folders of an ImageFolder), batch sizes and epochs; a step is one batch of the training loop
(``ceil(set size / batch)`` per epoch). The time of a step is measured (``step_cost.csv``, written by
``soseleto bench`` / the ``step_cost`` rule, for the same device) or, without it, the documented
default of :data:`ASSUMED_MS` (marked ``assumed``). A step's time is scaled from the benchmark's
batch to the rule's: linearly on a CPU; on a GPU never below the benchmark's (small networks are
bound by kernel launches there). Evaluation passes and data loading are not counted.

This module imports neither torch nor pandas: Snakemake calls it while it builds the DAG.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soseleto.config import DataConfig, WorkflowConfig
from soseleto.paths import dataset_tag

# train-split images per class (and channels) of the torchvision sets
KNOWN_SETS: dict[str, tuple[tuple[int, ...], int]] = {
    "cifar10": ((5000,) * 10, 3),
    "cifar100": ((500,) * 100, 3),
    "svhn": ((4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659), 3),
    "mnist": ((5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949), 1),
    "fashionmnist": ((6000,) * 10, 1),
    "kmnist": ((6000,) * 10, 1),
}
# The batch (source, target) at which ``soseleto bench`` times each model, and the time per step in
# ms (plain step, SOSELETO step) assumed when no step_cost.csv of the device is at hand. cuda: this
# project's H200 measurement (README.md, "Step cost"). cpu: `soseleto bench --quick --threads 2` on
# this project's 2-core CPU machine, LeNet and CIFAR-10 Quick (ResNet-18's plain step did not time
# reproducibly there: rounded up). mlp and bn_convnet were never timed: rough guesses.
BENCH_BATCH = {"mlp": (500, 50), "lenet": (32, 10), "cifar_quick": (256, 32), "bn_convnet": (256, 32),
               "resnet18": (128, 32)}
ASSUMED_MS = {
    "cuda": {"mlp": (1.0, 3.0), "lenet": (2.2, 6.5), "cifar_quick": (2.6, 10.2), "bn_convnet": (3.0, 12.0),
             "resnet18": (9.3, 34.6)},
    "cpu": {"mlp": (2.0, 6.0), "lenet": (8.0, 15.0), "cifar_quick": (150.0, 220.0), "bn_convnet": (200.0, 300.0),
            "resnet18": (1000.0, 2100.0)},
}
OTHER_MINUTES = 0.5  # assumed per job that trains nothing (splits, tables, figures; a download takes longer)
NOTE = ("Steps: from the config and the set sizes; evaluation passes and data loading are not counted. Time per "
        "step: `step_cost.csv` when measured on this device (`soseleto bench`), else an assumed default "
        "(soseleto/report/plan.py); scaled from the benchmark's batch to the rule's. Wall time: perfect packing of "
        "the jobs, never less than the longest job; a projection, not a promise (runs that evaluate every epoch, "
        "or share the cores, take longer: README.md, \"Cost\").")
COLUMNS = ("stage", "rule", "jobs", "steps_per_job", "model", "batch", "ms_per_step", "time_from", "hours_per_job",
           "hours")


@dataclass
class Work:
    """One rule's jobs: the steps of each job, the step kind (``plain``, ``soseleto`` or ``none``),
    the network, the samples per step (source + target batch) and the threads of a job."""

    stage: str
    rule: str
    steps: list[int] = field(default_factory=list)
    kind: str = "none"
    model: str = "-"
    batch: int = 0
    threads: int = 1


# -- set sizes ---------------------------------------------------------------------------------------
def class_counts(dataset: str, data: DataConfig, *, results: str | os.PathLike = "results") -> tuple[list[int], int]:
    """Train-split images per class and channels of ``dataset`` (a torchvision name or a file)."""
    manifest = Path(results) / "data" / f"{dataset_tag(dataset)}.json"
    if manifest.exists():  # written by the dataset job: the sizes of the very data the run reads
        m = json.loads(manifest.read_text())
        if m.get("dataset") == dataset and m.get("source") in (data.source, "file"):
            return list(m["train"]["class_counts"]), int(m["shape"][0])
    name = dataset.lower()
    if name in KNOWN_SETS:
        counts, channels = KNOWN_SETS[name]
        if data.source == "generated":  # random labels: about the same number per class
            return [data.generated_train / len(counts)] * len(counts), channels
        return list(counts), channels
    return _file_counts(Path(dataset))


def _file_counts(path: Path) -> tuple[list[int], int]:
    if path.suffix == ".npz" and path.is_file():
        import numpy as np

        from soseleto.data import validate  # headers first: a damaged or oversized file is refused, named

        arrays = validate.inspect_npz(path)
        if not {"x", "y"} <= set(arrays):
            raise ValueError(f"{str(path)!r}: needs arrays x and y, has {sorted(arrays)}")
        y, shape = validate.labels(validate.load_npz(path, keys=("y",))["y"], str(path)), arrays["x"].shape
        return np.bincount(y).tolist(), 1 if len(shape) == 3 else int(shape[-1])
    if path.is_dir():
        classes = sorted(p for p in path.iterdir() if p.is_dir())
        return [sum(1 for q in c.iterdir() if q.is_file()) for c in classes], 3
    raise ValueError(f"{path}: no such .npz file or image folder; cannot count its images for the plan")


def _model(model: str, channels: int) -> str:
    return model if model != "auto" else ("lenet" if channels == 1 else "cifar_quick")


def _steps(n: float, batch: int, epochs: int) -> int:
    return int(epochs * math.ceil(n / batch))


# -- the jobs of each rule ---------------------------------------------------------------------------
def synthetic_work(cfg: WorkflowConfig) -> list[Work]:
    syn = cfg.synthetic
    t = syn.trainer
    steps = _steps(syn.n_source, t.source_batch, t.epochs)
    return [Work("synthetic", "synthetic_seed", [steps] * len(syn.seeds), "soseleto", "mlp",
                 t.source_batch + t.target_batch),
            Work("synthetic", "synthetic_summary", [0]), Work("synthetic", "figure1", [0])]


def noisy_sizes(cfg: WorkflowConfig, results: str | os.PathLike = "results") -> tuple[int, int, str]:
    """Source images and the clean target images a method trains on (validation excluded), and the
    network of the Table 1 protocol."""
    split = cfg.noisy.split
    counts, channels = class_counts(split.dataset, cfg.data, results=results)
    k = len(counts)
    held_out = split.test_per_class * k if split.test_per_class else 0
    n_source = round(sum(counts)) - held_out - split.n_target
    if n_source <= 0:
        raise ValueError(f"noisy.split: {split.dataset} has {round(sum(counts))} training images, too few for "
                         f"n_target={split.n_target} and {held_out} test images")
    return n_source, split.n_target - split.validation_per_class * k, _model(cfg.noisy.model, channels)


def noisy_work(cfg: WorkflowConfig, results: str | os.PathLike = "results") -> list[Work]:
    """The Table 1 protocol's rules (workflow/rules/noisy.smk and peers.smk)."""
    nz = cfg.noisy
    ns, nt, model = noisy_sizes(cfg, results)
    runs = len(nz.noise_levels) * len(nz.seeds)
    methods = set(nz.methods)
    p, b = nz.peer_trainer, nz.baseline
    glc = _steps(ns, p.source_batch, nz.peers.glc_noisy_epochs or p.epochs) + _steps(ns + nt, p.source_batch, p.epochs)
    rows = [  # (method, rule, steps, kind, batch)
        ("noisy_baseline", "noisy_baseline", _steps(ns, b.batch, b.epochs), "plain", b.batch),
        ("soseleto", "noisy_soseleto", _steps(ns, nz.trainer.source_batch, nz.trainer.epochs), "soseleto",
         nz.trainer.source_batch + nz.trainer.target_batch),
        ("soseleto_frozen", "noisy_soseleto_frozen", _steps(ns, nz.trainer.source_batch, nz.trainer.epochs),
         "soseleto", nz.trainer.source_batch + nz.trainer.target_batch),
        ("finetune", "noisy_finetune", _steps(nt, nz.finetune.batch, nz.finetune.epochs), "plain", nz.finetune.batch),
        ("joint", "noisy_peer (joint)", _steps(ns, p.source_batch, p.epochs), "plain", p.source_batch + p.target_batch),
        ("l2rw", "noisy_l2rw", _steps(ns, p.source_batch, p.epochs), "soseleto", p.source_batch + p.target_batch),
        ("glc", "noisy_peer (glc)", glc, "plain", p.source_batch),
        ("noise_layer", "noisy_peer (noise_layer)", _steps(ns + nt, p.source_batch, p.epochs), "plain", p.source_batch),
    ]
    needed = methods | ({"noisy_baseline"} if "finetune" in methods else set())
    work = [Work("noisy", rule, [steps] * runs, kind, model, batch, nz.threads)
            for method, rule, steps, kind, batch in rows if method in needed]
    if nz.cleanlab_folds and "noisy_baseline" in methods:
        k = nz.cleanlab_folds
        work.append(Work("noisy", "noisy_cleanlab", [k * _steps(ns * (k - 1) / k, b.batch, b.epochs)] * runs, "plain",
                         model, b.batch, nz.threads))
    other = ["confusion_figure", "noisy_curves", "table1_peers"]
    other += ["table1"] if methods & {"noisy_baseline", "soseleto", "soseleto_frozen", "finetune"} else []
    other += ["figure2", "noisy_alpha_histograms"] if "soseleto" in methods else []
    other += ["label_errors"] if methods & {"soseleto", "l2rw"} or (nz.cleanlab_folds and "noisy_baseline" in methods) else []
    work += [Work("noisy", "noisy_split", [0] * len(nz.noise_levels))] + [Work("noisy", r, [0]) for r in other]
    return work


def transfer_work(cfg: WorkflowConfig, results: str | os.PathLike = "results") -> list[Work]:
    """The Table 2 protocol's and Appendix C's rules (workflow/rules/transfer.smk)."""
    tr, ac = cfg.transfer, cfg.transfer.appendix_c
    src, _ = class_counts(tr.source.dataset, cfg.data, results=results)
    tgt, channels = class_counts(tr.target.dataset, cfg.data, results=results)
    model = _model(tr.model, channels)
    ns = round(sum(src[c] for c in tr.source.classes))
    pool = round(sum(tgt[c] for c in tr.target.classes))
    runs = [(nt, s) for nt in tr.n_target for s in tr.seeds]
    methods = set(tr.methods) | ({"soseleto"} if "two_stage" in tr.methods else set())
    s, to, ft, pre, two = tr.soseleto, tr.target_only, tr.finetune, tr.pretrain, tr.two_stage
    sos = _steps(ns, s.source_batch, s.epochs)
    rows = [  # (method, rule, steps per job, kind, batch)
        ("fine_tuning", "transfer_pretrain", [_steps(ns, pre.batch, pre.epochs)] * len(tr.seeds), "plain", pre.batch),
        ("target_only", "transfer_target_only", [_steps(nt, to.batch, to.epochs) for nt, _ in runs], "plain", to.batch),
        ("fine_tuning", "transfer_fine_tuning", [_steps(nt, ft.batch, ft.epochs) for nt, _ in runs], "plain", ft.batch),
        ("soseleto", "transfer_soseleto", [sos] * len(runs), "soseleto", s.source_batch + s.target_batch),
        ("soseleto_frozen", "transfer_soseleto_frozen", [sos] * len(runs), "soseleto", s.source_batch + s.target_batch),
        ("soseleto_theta", "transfer_soseleto_theta", [sos] * len(runs), "soseleto", s.source_batch + s.target_batch),
        ("two_stage", "transfer_two_stage", [_steps(pool - nt, two.source_batch, two.epochs) for nt, _ in runs],
         "soseleto", two.source_batch + two.target_batch),
    ]
    work = [Work("transfer", rule, steps, kind, model, batch) for m, rule, steps, kind, batch in rows if m in methods]
    splits = set(runs)
    if ac.enabled:
        ns_ac = round(sum(src[c] for c in ac.source_classes))
        work.append(Work("appendix C", "appendix_c_run", [_steps(ns_ac, s.source_batch, s.epochs)] * len(ac.seeds),
                         "soseleto", model, s.source_batch + s.target_batch))
        work += [Work("appendix C", r, [0]) for r in ("appendix_c_source_split", "appendix_c")]
        splits |= {(ac.n_target, seed) for seed in ac.seeds}
    work += [Work("transfer", "transfer_target_split", [0] * len(splits))]
    return work + [Work("transfer", r, [0]) for r in ("transfer_source_split", "table2", "transfer_curves")]


def bench_work(cfg: WorkflowConfig, cores: int) -> list[Work]:
    """The step-cost benchmark (each model: warm-up and timed plain and SOSELETO steps, on every core)
    and the ``dataset`` jobs (one per data set)."""
    b = cfg.bench
    reps = 3 + 1 if b.quick else b.reps + 2
    tags = {dataset_tag(d) for d in (cfg.noisy.split.dataset, cfg.transfer.source.dataset, cfg.transfer.target.dataset)}
    return [Work("benchmark", f"step_cost ({m})", [reps], "bench", m, sum(BENCH_BATCH[m]), cores) for m in b.models] + [
        Work("data", "dataset", [0] * len(tags))]


def workflow_work(cfg: WorkflowConfig, *, cores: int = 1, results: str | os.PathLike = "results") -> list[Work]:
    """Every rule of ``snakemake all`` under ``cfg``, in stage order."""
    return (bench_work(cfg, cores) + synthetic_work(cfg) + noisy_work(cfg, results) + transfer_work(cfg, results))


# -- time per step -----------------------------------------------------------------------------------
def step_costs(device: str, bench_csv: str | os.PathLike | None = None) -> dict[str, tuple[float, float, str]]:
    """Per model: ms per plain step and per SOSELETO step at :data:`BENCH_BATCH`, and where they come
    from (``measured: <csv>`` for the rows of ``bench_csv`` timed on ``device``, else ``assumed``)."""
    if device not in ASSUMED_MS:
        raise ValueError(f"device={device!r}: the plan knows 'cpu' and 'cuda'")
    costs = {m: (plain, sos, "assumed") for m, (plain, sos) in ASSUMED_MS[device].items()}
    if bench_csv is not None and Path(bench_csv).is_file():
        with open(bench_csv, newline="") as f:
            for row in csv.DictReader(f):
                same_batch = (int(row["source_batch"]), int(row["target_batch"])) == BENCH_BATCH.get(row["model"])
                if row["device"].split(":")[0] == device and same_batch:
                    costs[row["model"]] = (float(row["plain_ms"]), float(row["soseleto_ms"]),
                                           f"measured ({Path(bench_csv).name}, {row['threads']} threads)")
    return costs


def step_ms(work: Work, costs: dict[str, tuple[float, float, str]], device: str) -> tuple[float, str]:
    """ms per step of ``work``'s jobs and its origin: the benchmark's time scaled to the rule's batch
    (linearly on a CPU, never below the benchmark's time on a GPU). A ``bench`` step is one plain
    and one SOSELETO step of the benchmark itself."""
    plain, sos, origin = costs[work.model]
    if work.kind == "bench":
        return plain + sos, origin
    sb, tb = BENCH_BATCH[work.model]
    ref_ms, ref_n = (sos, sb + tb) if work.kind == "soseleto" else (plain, sb)
    ratio = work.batch / ref_n
    return ref_ms * (ratio if device == "cpu" else max(1.0, ratio)), origin


def plan_rows(works: Iterable[Work], costs: dict, device: str) -> list[dict[str, Any]]:
    """One row of :data:`COLUMNS` per rule: hours = every job's steps × ms per step."""
    rows = []
    for w in works:
        if w.kind == "none":
            minutes = OTHER_MINUTES * len(w.steps)
            rows.append({"stage": w.stage, "rule": w.rule, "jobs": len(w.steps), "steps_per_job": "-", "model": "-",
                         "batch": "-", "ms_per_step": "-", "time_from": f"assumed {OTHER_MINUTES:g} min/job",
                         "hours_per_job": OTHER_MINUTES / 60, "hours": minutes / 60, "threads": w.threads,
                         "kind": w.kind, "total_steps": 0})
            continue
        ms, origin = step_ms(w, costs, device)
        lo, hi = min(w.steps), max(w.steps)
        rows.append({"stage": w.stage, "rule": w.rule, "jobs": len(w.steps),
                     "steps_per_job": str(lo) if lo == hi else f"{lo}-{hi}", "model": w.model, "batch": w.batch,
                     "ms_per_step": round(ms, 1), "time_from": origin, "hours_per_job": hi * ms / 3.6e6,
                     "hours": sum(w.steps) * ms / 3.6e6, "threads": w.threads, "kind": w.kind,
                     "total_steps": sum(w.steps)})
    return rows


def share_gains(device: str, jobs_per_gpu: int, share_csv: str | os.PathLike | None = None
                ) -> dict[tuple[str, str], tuple[float, str]]:
    """Per (model, step kind): how many times the work of one job ``jobs_per_gpu`` jobs on one card
    finish in the same time, and where that comes from: ``share_csv`` (``python -m
    soseleto.bench_share``) rows of ``device``, at the most jobs measured that do not exceed
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
         results: str | os.PathLike = "results", pending: dict[str, int] | None = None, jobs_per_gpu: int = 1,
         share_csv: str | os.PathLike | None = None) -> dict[str, Any]:
    """The cost plan of ``snakemake all`` under ``cfg``: ``rows`` (:func:`plan_rows`) and the totals.
    ``jobs_per_gpu`` training jobs share each card, at the gains measured in ``share_csv`` (:func:`share_gains`).

    ``pending`` (rule name, or ``noisy_peer (<peer>)``, -> jobs still to run; Snakemake's DAG) keeps
    only that many jobs of each rule, the costliest ones, and drops the rules with none."""
    works = workflow_work(cfg, cores=cores, results=results)
    if pending is not None:
        for w in works:
            w.steps = sorted(w.steps, reverse=True)[:pending.get(w.rule.split(" (")[0] if w.kind == "bench" else w.rule, 0)]
        works = [w for w in works if w.steps]
    rows = plan_rows(works, step_costs(device, bench_csv), device)
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
    """``cost_plan.csv`` (one row per rule, :data:`COLUMNS`), ``cost_plan.md`` and their provenance."""
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


SHARE_CSV = "results/benchmarks/share_cost.csv"  # python -m soseleto.bench_share's default output


def write_workflow_plan(cfg: WorkflowConfig, bench_csv: str, outputs: Any, config: Any, cores: int,
                        gpu_slots: int | None = None) -> None:
    """Rule ``cost_plan``: the plan of ``snakemake all`` under ``cfg`` into ``outputs.csv`` and ``outputs.md``."""
    result = plan(cfg, device=default_device(cfg), cores=cores, bench_csv=bench_csv, share_csv=SHARE_CSV,
                  **gpu_layout(gpu_slots))
    write_plan(result, outputs.csv, outputs.md, config=config)


def gpu_layout(gpu_slots: int | None) -> dict[str, int]:
    """``gpus`` (the cards visible here, at least 1) and ``jobs_per_gpu`` for Snakemake's
    ``--resources gpu=<gpu_slots>``: the training jobs it lets run at once, spread evenly over the cards."""
    gpus = max(1, gpu_count())
    return {"gpus": gpus, "jobs_per_gpu": max(1, math.ceil((gpu_slots or gpus) / gpus))}


def show_pending(cfg: WorkflowConfig, dag: Any, *, cores: int, gpu_slots: int | None = None,
                 bench_csv: str | os.PathLike = "results/benchmarks/step_cost.csv") -> None:
    """The Snakefile's ``onstart``: print the plan of the jobs Snakemake is about to run (``dag``:
    its DAG; ``gpu_slots``: its ``--resources gpu``) to stderr. Advice only: an error here is
    printed, never raised."""
    import sys

    try:
        pending: dict[str, int] = {}
        for job in dag.needrun_jobs():
            name = job.rule.name + (f" ({job.wildcards.peer})" if job.rule.name == "noisy_peer" else "")
            pending[name] = pending.get(name, 0) + 1
        result = plan(cfg, device=default_device(cfg), cores=cores, bench_csv=bench_csv, pending=pending,
                      share_csv=SHARE_CSV, **gpu_layout(gpu_slots))
        if result["rows"]:
            print("Cost plan of the jobs to run (soseleto plan):\n" + render_markdown(result), file=sys.stderr)
    except Exception as err:  # noqa: BLE001  (a plan is advice: it never stops the run)
        print(f"soseleto: no cost plan ({type(err).__name__}: {err})", file=sys.stderr)


# -- the config, as Snakemake loads it -------------------------------------------------------------------
def load_config(configfiles: Iterable[str | os.PathLike] = (), *, base: str | os.PathLike = "config/config.yaml"
                ) -> tuple[WorkflowConfig, dict]:
    """``base`` updated key by key (recursively) by each of ``configfiles``, as ``snakemake
    --configfile`` does; the typed config and the merged mapping."""
    import yaml

    from soseleto.config import workflow_config

    if not Path(base).is_file():
        raise FileNotFoundError(f"{base}: not found (run from the repository root)")
    mapping = yaml.safe_load(Path(base).read_text()) or {}
    for path in configfiles:
        merge(mapping, yaml.safe_load(Path(path).read_text()) or {})
    return workflow_config(mapping), mapping


def merge(into: dict, update: dict) -> dict:
    """``into`` with ``update``'s keys replacing its own, section by section."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def default_device(cfg: WorkflowConfig) -> str:
    """The device the plan prices: ``cpu`` when the config pins training to the CPU, or says
    ``auto`` and this machine shows no NVIDIA GPU; else ``cuda``. Torch-free, so the plan stays instant."""
    if cfg.device == "cpu" or (cfg.device == "auto" and not gpu_visible()):
        return "cpu"
    return "cuda"


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible here without importing torch: the driver lists one and
    ``CUDA_VISIBLE_DEVICES`` does not hide them all."""
    return gpu_count() > 0


def gpu_count(driver: str | os.PathLike = "/proc/driver/nvidia/gpus") -> int:
    """NVIDIA GPUs visible here, without importing torch: the cards the driver lists (1 when only
    ``nvidia-smi`` shows there is one), or fewer when ``CUDA_VISIBLE_DEVICES`` names fewer."""
    gpus = Path(driver)
    cards = sum(1 for _ in gpus.iterdir()) if gpus.is_dir() else int(shutil.which("nvidia-smi") is not None)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return cards
    return min(cards, len([v for v in visible.split(",") if v.strip() not in ("", "-1")]))


# -- measured: the epochs of finished runs ------------------------------------------------------------
def run_costs(metrics_jsons: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """What finished runs cost, from their ``metrics.json``: per (task, method), the runs, steps per
    epoch (training set / batch), the median seconds per epoch over every epoch of every run and
    the ms per step it implies (evaluation after an epoch is included)."""
    import statistics

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for path in metrics_jsons:
        r = json.loads(Path(path).read_text())
        if "method" not in r or "history" not in r:  # not a training run's metrics (e.g. the synthetic summary)
            continue
        settings = (r.get("provenance", {}).get("config") or {}).get("settings") or {}
        batch = settings.get("source_batch") or settings.get("batch")
        n = r.get("n_pool") if r["method"] == "two_stage" else (
            r.get("n_target") if r["method"] in ("target_only", "fine_tuning", "finetune") else r.get("n_source"))
        seconds = [h["seconds"] for h in r.get("history", []) if h.get("seconds") is not None]
        if not (batch and n and seconds) or r["method"] in ("glc", "noise_layer"):  # two sets or two stages
            continue
        task = Path(path).parts[Path(path).parts.index("results") + 1:][:2] if "results" in Path(path).parts else ("?",)
        g = groups.setdefault(("/".join(task), r["method"]), {"runs": 0, "seconds": [], "steps": math.ceil(n / batch),
                                                               "batch": batch, "device": r["provenance"].get("device")})
        g["runs"] += 1
        g["seconds"] += seconds
    return [{"task": task, "method": method, "runs": g["runs"], "epochs": len(g["seconds"]) // g["runs"],
             "batch": g["batch"], "steps_per_epoch": g["steps"], "seconds_per_epoch": statistics.median(g["seconds"]),
             "ms_per_step": 1000 * statistics.median(g["seconds"]) / g["steps"], "device": g["device"]}
            for (task, method), g in groups.items()]


def run_costs_markdown(costs: list[dict[str, Any]]) -> str:
    """:func:`run_costs` as a markdown table."""
    head = ["task", "method", "runs", "epochs", "batch", "steps per epoch", "s per epoch (median)", "ms per step",
            "device"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for c in costs:
        lines.append(f"| {c['task']} | {c['method']} | {c['runs']} | {c['epochs']} | {c['batch']} | "
                     f"{c['steps_per_epoch']} | {c['seconds_per_epoch']:.2f} | {c['ms_per_step']:.0f} | {c['device']} |")
    return "\n".join(lines) + "\n"
