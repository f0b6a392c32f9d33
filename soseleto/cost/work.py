"""What each job of a workflow run trains: its SGD steps, network, samples per step and threads.

A job is ``(rule, wildcards)``, as in Snakemake's DAG. :func:`workflow_jobs` lists the jobs of
``snakemake all`` for a config (the same set the DAG holds; a test checks it against Snakemake's
dry run), :func:`job_work` says what one of them trains: the steps come from the set sizes, batch
sizes and epochs, and, for a training run, from the method's entry in the registry
(:mod:`soseleto.config.methods`: the sets it passes over and the epochs of each pass). A step is one
batch of the training loop (``ceil(set size / batch)`` per epoch).

Set sizes: ``results/data/<tag>.json`` when a ``dataset`` job has written it, else the catalog of
torchvision sets (:mod:`soseleto.config.datasets`), the ``y`` array of an ``.npz`` file or the class
folders of an ImageFolder. Imports neither torch nor pandas: Snakemake calls it while it builds
the DAG.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soseleto.config import DataConfig, WorkflowConfig
from soseleto.config import methods as registry
from soseleto.config.datasets import CATALOG
from soseleto.data import builtin
from soseleto.paths import dataset_tag, detection_runs, noise_tag

# the workflow rule that trains a method, by the per-sample file the method writes
NOISY_RULES = {None: "noisy_run", "alpha": "noisy_run_alpha", "scores": "noisy_run_scores"}
TRANSFER_RULES = {None: "transfer_run", "alpha": "transfer_run_alpha"}
# the batch (source, target) at which ``soseleto bench`` times each model (a test holds it equal to
# the benchmark's own settings, which import torch)
BENCH_BATCH = {"mlp": (500, 50), "lenet": (32, 10), "cifar_quick": (256, 32), "bn_convnet": (256, 32),
               "resnet18": (128, 32)}


@dataclass
class Work:
    """What one job trains: ``steps`` SGD steps of kind ``kind`` (a step ``soseleto bench`` times,
    e.g. ``plain`` or ``soseleto``; ``bench`` for the benchmark itself, ``none`` for a job that
    trains nothing) on ``model`` with ``batch`` samples per step (source + target batch), using
    ``threads`` CPU threads. ``row``: the line of the plan it counts in."""

    stage: str
    row: str
    steps: int = 0
    kind: str = "none"
    model: str = "-"
    batch: int = 0
    threads: int = 1
    bilevel: bool = False


JobKey = tuple[str, dict[str, str]]  # a job of the DAG: (rule, wildcards)


# -- set sizes ---------------------------------------------------------------------------------------
def class_counts(dataset: str, data: DataConfig, *, results: str | os.PathLike = "results") -> tuple[list[float], int]:
    """Training images per class and channels of ``dataset`` (a torchvision name or a file)."""
    manifest = Path(results) / "data" / f"{dataset_tag(dataset, data)}.json"
    if manifest.exists():  # written by the dataset job: the sizes of the very data the run reads
        m = json.loads(manifest.read_text())
        if m.get("dataset") == dataset and m.get("source") in (data.source, "file"):
            return list(m["train"]["class_counts"]), int(m["shape"][0])
    name = dataset.lower()
    if name in CATALOG:
        info = CATALOG[name]
        if data.source == "generated":  # random labels: about the same number per class
            return [data.generated_train / info.n_classes] * info.n_classes, info.shape[0]
        return list(info.train_counts), info.shape[0]
    return _file_counts(Path(builtin.resolve(dataset)))


def _file_counts(path: Path) -> tuple[list[float], int]:
    if path.suffix == ".npz" and path.is_file():
        import numpy as np

        from soseleto import validate  # headers first: a damaged or oversized file is refused, named

        arrays = validate.inspect_npz(path)
        if not {"x", "y"} <= set(arrays):
            raise ValueError(f"{str(path)!r}: needs arrays x and y, has {sorted(arrays)}")
        y, shape = validate.labels(validate.load_npz(path, keys=("y",))["y"], str(path)), arrays["x"].shape
        return np.bincount(y).tolist(), 1 if len(shape) == 3 else int(shape[-1])
    if path.is_dir():
        classes = sorted(p for p in path.iterdir() if p.is_dir())
        return [sum(1 for q in c.iterdir() if q.is_file()) for c in classes], 3
    raise ValueError(f"{path}: no such .npz file or image folder; cannot count its images for the plan")


def auto_model(model: str, channels: int) -> str:
    """The network ``model: auto`` trains on images with ``channels`` channels."""
    return model if model != "auto" else ("lenet" if channels == 1 else "cifar_quick")


class Sizes:
    """The set sizes of one config's runs, read once each."""

    def __init__(self, cfg: WorkflowConfig, results: str | os.PathLike = "results"):
        self.cfg, self.results = cfg, results

    @functools.cache
    def counts(self, dataset: str) -> tuple[tuple[float, ...], int]:
        counts, channels = class_counts(dataset, self.cfg.data, results=self.results)
        return tuple(counts), channels

    @functools.cached_property
    def noisy(self) -> dict[str, float]:
        """The Table 1 protocol's sets: noisy ``source``, clean ``target`` (validation excluded), ``union``."""
        split = self.cfg.noisy.split
        counts, _ = self.counts(split.dataset)
        held_out = split.test_per_class * len(counts) if split.test_per_class else 0
        source = round(sum(counts)) - held_out - split.n_target
        if source <= 0:
            raise ValueError(f"noisy.split: {split.dataset} has {round(sum(counts))} training images, too few for "
                             f"n_target={split.n_target} and {held_out} test images")
        target = split.n_target - split.validation_per_class * len(counts)
        return {"source": source, "target": target, "union": source + target}

    def transfer(self, n_target: int, *, source_classes: tuple[int, ...] | None = None) -> dict[str, float]:
        """The Table 2 protocol's sets for one target size: ``source`` (the source classes' images),
        ``target``, ``pool`` (the target classes' other training images). A file target's
        ``test_per_class`` held-out images of each target class are in neither the pool nor a
        source drawn from the same file."""
        tr = self.cfg.transfer
        src, _ = self.counts(tr.source.dataset)
        tgt, _ = self.counts(tr.target.dataset)
        held = tr.test_per_class or 0  # null for a set with its own test split (TransferConfig.check)
        classes = source_classes or tr.source.classes
        source = round(sum(src[c] for c in classes))
        if tr.source.dataset == tr.target.dataset:
            source -= held * len(set(classes) & set(tr.target.classes))
        pool = round(sum(tgt[c] for c in tr.target.classes)) - held * len(tr.target.classes) - n_target
        return {"source": source, "target": n_target, "pool": pool}

    def model(self, protocol: str) -> str:
        cfg = getattr(self.cfg, protocol)
        dataset = cfg.split.dataset if protocol == "noisy" else cfg.target.dataset
        return auto_model(cfg.model, self.counts(dataset)[1])


# -- the jobs of `snakemake all` ---------------------------------------------------------------------
def needed(protocol: str, configured) -> list[registry.Method]:
    """The registry entries ``configured`` runs, with the runs they start from, in registry order."""
    names = set(configured)
    for name in list(names):
        while (first := registry.get(protocol, name).starts_from) is not None:
            names.add(first)
            name = first
    return [m for m in registry.methods(protocol) if m.name in names]


def workflow_jobs(cfg: WorkflowConfig) -> list[JobKey]:
    """Every job of ``snakemake all`` under ``cfg``: ``(rule, wildcards)`` in stage order."""
    tags = dict.fromkeys(dataset_tag(d, cfg.data) for d in (cfg.noisy.split.dataset, cfg.transfer.source.dataset,
                                                            cfg.transfer.target.dataset))
    jobs: list[JobKey] = [("step_cost", {}), ("cost_plan", {})] + [("dataset", {"dataset": t}) for t in tags]
    jobs += [("synthetic_seed", {"seed": str(s)}) for s in cfg.synthetic.seeds]
    jobs += [("synthetic_summary", {}), ("figure1", {})]
    return jobs + _noisy_jobs(cfg) + _transfer_jobs(cfg)


def _noisy_jobs(cfg: WorkflowConfig) -> list[JobKey]:
    nz = cfg.noisy
    noises, seeds = [noise_tag(v) for v in nz.noise_levels], [str(s) for s in nz.seeds]
    jobs: list[JobKey] = [("noisy_split", {"noise": n}) for n in noises]
    for m in needed("noisy", nz.methods):
        jobs += [(NOISY_RULES[m.scores], {"noise": n, "method": m.name, "seed": s}) for n in noises for s in seeds]
    if nz.cleanlab_folds and "noisy_baseline" in nz.methods:
        jobs += [("noisy_cleanlab", {"noise": n, "seed": s}) for n in noises for s in seeds]
    rows = {registry.get("noisy", m).row for m in nz.methods}
    other = ["confusion_figure", "noisy_curves", "table1_peers"]
    other += ["table1"] if rows & {"paper", "ablation"} else []
    other += ["figure2", "noisy_alpha_histograms"] if "soseleto" in nz.methods else []
    other += ["label_errors"] if detection_runs(nz.methods, noises, nz.seeds, run="",
                                                cleanlab=nz.cleanlab_folds > 0) else []
    return jobs + [(r, {}) for r in other]


def _transfer_jobs(cfg: WorkflowConfig) -> list[JobKey]:
    tr, ac = cfg.transfer, cfg.transfer.appendix_c
    runs = [(str(nt), str(s)) for nt in tr.n_target for s in tr.seeds]
    splits = dict.fromkeys(runs)
    if ac.enabled:
        splits.update(dict.fromkeys((str(ac.n_target), str(s)) for s in ac.seeds))
    jobs: list[JobKey] = [("transfer_source_split", {})]
    jobs += [("transfer_target_split", {"nt": nt, "seed": s}) for nt, s in splits]
    for m in needed("transfer", tr.methods):
        if m.name == "pretrain":  # once per seed, for every target size
            jobs += [("transfer_pretrain", {"seed": str(s)}) for s in tr.seeds]
        else:
            jobs += [(TRANSFER_RULES[m.scores], {"nt": nt, "seed": s, "method": m.name}) for nt, s in runs]
    jobs += [("table2", {}), ("transfer_curves", {})]
    if ac.enabled:
        jobs += [("appendix_c_source_split", {})] + [("appendix_c_run", {"seed": str(s)}) for s in ac.seeds]
        jobs += [("appendix_c", {})]
    return jobs


# -- what one job trains -----------------------------------------------------------------------------
def job_work(cfg: WorkflowConfig, rule: str, wildcards: dict[str, str], sizes: Sizes, *, cores: int = 1
             ) -> list[Work]:
    """What the job ``(rule, wildcards)`` trains (the benchmark: one :class:`Work` per model it times)."""
    method = wildcards.get("method")
    if rule in NOISY_RULES.values():
        return [_run_work(cfg, "noisy", registry.get("noisy", method), sizes.noisy, sizes, row=f"{rule} ({method})")]
    if rule in TRANSFER_RULES.values() or rule == "transfer_pretrain":
        entry = registry.get("transfer", method or "pretrain")
        n_target = int(wildcards.get("nt", 0))
        row = f"{rule} ({method})" if method else rule
        return [_run_work(cfg, "transfer", entry, sizes.transfer(n_target), sizes, row=row, stage="transfer")]
    if rule == "appendix_c_run":
        sets = sizes.transfer(cfg.transfer.appendix_c.n_target, source_classes=cfg.transfer.appendix_c.source_classes)
        return [_run_work(cfg, "transfer", registry.get("transfer", "appendix_c"), sets, sizes, row=rule,
                          stage="appendix C")]
    if rule == "synthetic_seed":
        syn = cfg.synthetic
        t = syn.trainer
        return [Work("synthetic", rule, _steps(syn.n_source, t.source_batch, t.epochs), "soseleto", "mlp",
                     t.source_batch + t.target_batch, bilevel=True)]
    if rule == "noisy_cleanlab":
        nz, k = cfg.noisy, cfg.noisy.cleanlab_folds
        steps = k * _steps(sizes.noisy["source"] * (k - 1) / k, nz.baseline.batch, nz.baseline.epochs)
        return [Work("noisy", rule, steps, "plain", sizes.model("noisy"), nz.baseline.batch, nz.threads)]
    if rule == "step_cost":
        b = cfg.bench
        reps = 3 + 1 if b.quick else b.reps + 2
        return [Work("benchmark", f"step_cost ({m})", reps, "bench", m, sum(BENCH_BATCH[m]), cores) for m in b.models]
    return [Work(_stage(rule), rule)]


def _run_work(cfg: WorkflowConfig, protocol: str, entry: registry.Method, sets: dict[str, float], sizes: Sizes, *,
              row: str, stage: str | None = None) -> Work:
    settings = getattr(getattr(cfg, protocol), entry.settings)
    schedule = settings.schedule
    steps = 0
    for data, epochs_path in entry.passes:
        epochs = _at(cfg, epochs_path) if epochs_path else None
        steps += _steps(sets[data], schedule.source_batch, epochs or settings.epochs)
    batch = schedule.source_batch + (schedule.target_batch if entry.target_batches else 0)
    threads = cfg.noisy.threads if protocol == "noisy" else 1
    return Work(stage or protocol, row, steps, entry.step, sizes.model(protocol), batch, threads, entry.bilevel)


def _at(cfg: Any, path: str) -> Any:
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _steps(n: float, batch: int, epochs: int) -> int:
    return int(epochs * math.ceil(n / batch))


def _stage(rule: str) -> str:
    for prefix, stage in (("synthetic", "synthetic"), ("figure1", "synthetic"), ("noisy", "noisy"),
                          ("confusion", "noisy"), ("table1", "noisy"), ("figure2", "noisy"), ("label", "noisy"),
                          ("transfer", "transfer"), ("table2", "transfer"), ("appendix_c", "appendix C"),
                          ("dataset", "data"), ("cost", "benchmark"), ("share", "benchmark")):
        if rule.startswith(prefix):
            return stage
    return "other"
