"""Names in result paths, and the run lists of the workflow. Snakemake imports this module to
build the DAG, so it imports neither torch nor pandas.

Result paths name what they were made from, so that the runs of two configs never share (or, when
a job fails, delete) a file: ``results/noisy/<data set>/...`` for the Table 1 protocol,
``results/transfer/<source>_<classes>-to-<target>_<classes>/...`` for the Table 2 protocol (a data
set named by :func:`dataset_tag`: ``cifar10``, its generated stand-in ``cifar10-generated``),
``results/benchmarks/step_cost-<device>[-quick][-<N>threads].csv`` for a step-cost benchmark
(:func:`bench_tag`) and ``results/benchmarks/cost_plan-<data sets>.{csv,md}`` for the plan of a
config (:func:`config_tag`). ``results/README.md`` lists them all.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from soseleto.config import DATASET_NAMES, BenchConfig, DataConfig, SideConfig, WorkflowConfig
from soseleto.config import methods as registry

BENCHMARKS = "results/benchmarks"
STEP_COST_NAME = f"{BENCHMARKS}/step_cost-<device>[-quick][-<N>threads].csv"  # step_cost_csv, in help texts
GENERATED_SUFFIX = "-generated"  # the tag of a torchvision set's generated stand-in ends so: cifar10-generated


def dataset_tag(dataset: str, data: DataConfig | None) -> str:
    """How ``dataset`` is named in result paths: a torchvision set's name (``cifar10``), or
    ``cifar10-generated`` where ``data`` (the config's ``data`` section) replaces it by a generated
    stand-in (``source: generated``); a file's / folder's name without ``.npz`` (``mnist5k``; files
    are never replaced). ``data=None``: the real set's name, for a caption or title. Braces become
    parentheses (``a{1}.npz`` -> ``a(1)``): in a Snakemake path they would open a wildcard. Other
    characters stay; where a rule matches tags by a regex it escapes them (``re.escape``)."""
    if dataset.lower() in DATASET_NAMES:
        generated = data is not None and data.source == "generated"
        return dataset.lower() + (GENERATED_SUFFIX if generated else "")
    return PurePath(dataset).name.removesuffix(".npz").translate(_BRACES)


_BRACES = str.maketrans("{}", "()")


def manifest(dataset: str, data: DataConfig) -> str:
    """The file the ``dataset`` rule writes once a data set is in place (downloaded if configured)."""
    return f"results/data/{dataset_tag(dataset, data)}.json"


def config_tag(cfg: WorkflowConfig) -> str:
    """The data sets a workflow config trains on, as in its result paths and joined by ``+`` (each
    once): ``cifar10+svhn+mnist`` (config/config.yaml), ``mnist5k`` (config/digits.yaml),
    ``cifar10-generated+svhn-generated+mnist-generated`` (config/smoke.yaml). It names the cost plan."""
    sets = (cfg.noisy.split.dataset, cfg.transfer.source.dataset, cfg.transfer.target.dataset)
    return "+".join(dict.fromkeys(dataset_tag(d, cfg.data) for d in sets))


def cost_plan(cfg: WorkflowConfig, suffix: str) -> str:
    """``results/benchmarks/cost_plan-<config tag><suffix>``: the plan of ``snakemake all`` under
    ``cfg`` (``suffix``: ``.csv`` or ``.md``)."""
    return f"{BENCHMARKS}/cost_plan-{config_tag(cfg)}{suffix}"


def bench_tag(device: str, bench: BenchConfig) -> str:
    """What a step-cost benchmark measured: the device's type (``cpu``, ``cuda``), then what ``bench``
    sets: ``quick`` (3 repetitions, CI), the torch CPU threads, and the models, repetitions and load
    where they differ from the defaults: ``cpu``, ``cuda``, ``cpu-quick-2threads``,
    ``cuda-reps50-lenet+resnet18``. Two configs that share a name measure the same thing."""
    default = BenchConfig()
    parts = [device.split(":")[0]]
    parts += ["quick"] if bench.quick else [f"reps{bench.reps}"] if bench.reps != default.reps else []
    parts += [f"{bench.threads}threads"] if bench.threads else []
    parts += [f"load{bench.load}"] if bench.load != default.load else []
    parts += ["+".join(bench.models)] if bench.models != default.models else []
    return "-".join(parts)


def step_cost_csv(device: str, bench: BenchConfig) -> str:
    """The step-cost benchmark (``soseleto bench``, the ``step_cost`` rule) of :func:`bench_tag`: the
    cost plan of a config reads the one its ``bench`` section and device name."""
    return f"{BENCHMARKS}/step_cost-{bench_tag(device, bench)}.csv"


def share_cost_csv(device: str) -> str:
    """``results/benchmarks/share_cost-<device type>.csv``: jobs sharing one device (``python -m
    soseleto.cost.share``, the ``share_cost`` rule), read by the plan for that device."""
    return f"{BENCHMARKS}/share_cost-{device.split(':')[0]}.csv"


def classes_tag(classes) -> str:
    """File-name tag of a class list: ``(0, 1, 2, 3, 4) -> '01234'``, ``(10, 11) -> '10.11'``."""
    return ("" if max(classes) < 10 else ".").join(str(int(c)) for c in classes)


def side_tag(side: SideConfig, data: DataConfig) -> str:
    return f"{dataset_tag(side.dataset, data)}_{classes_tag(side.classes)}"


def transfer_tag(source: SideConfig, target: SideConfig, data: DataConfig) -> str:
    """``svhn_01234-to-mnist_56789``: the task of a transfer run (``svhn-generated_01234-to-...``
    on generated stand-ins)."""
    return f"{side_tag(source, data)}-to-{side_tag(target, data)}"


def noise_tag(noise: float) -> str:
    """How a noise level appears in paths and wildcards: ``0.3`` -> ``'0.3'``."""
    return f"{float(noise):g}"


def detection_runs(methods, noise_tags, seeds, *, run: str, bench: str | None = None,
                   cleanlab: bool = True) -> list[dict[str, Any]]:
    """The runs that score the source, in table order: ``noise``, ``method``, ``seed``, ``path``
    (``run`` is the run directory pattern with ``{noise}``, ``{method}``, ``{seed}``) and, with
    ``bench`` (the same fields), ``benchmark``: the Snakemake benchmark file of the job, whose wall
    time is the detector's cost.

    The detectors of the registry (:func:`soseleto.config.methods.detectors`) among ``methods``;
    ``cleanlab`` (the noisy baseline's detector) when ``noisy_baseline`` is and ``cleanlab`` is true.
    """
    files = {m.name: f"/{m.scores}.csv" for m in registry.detectors("noisy") if m.name in methods}
    if cleanlab and "noisy_baseline" in methods:
        files["cleanlab"] = "/scores.csv"
    runs = []
    for n in noise_tags:
        for m, file in files.items():
            for s in seeds:
                key = {"noise": n, "method": m, "seed": s}
                runs.append({"noise": float(n), "method": m, "seed": int(s), "path": run.format(**key) + file,
                             **({"benchmark": bench.format(**key)} if bench else {})})
    return runs


def where_results(folders: list[str], configfiles: list[str]) -> str:
    """What a finished workflow run prints: the tables (``.md``) and figures (``.png``) under the
    existing ``folders`` (relative paths), and the command that builds the HTML report of this run."""
    lines = ["", "Results of this run:"]
    for folder in dict.fromkeys(folders):
        found = sorted(p.name for p in Path(folder).glob("*") if p.suffix in (".md", ".png"))
        if found:
            lines.append(f"  {folder}/: {', '.join(found)}")
    configs = "".join(f" --configfile {c}" for c in configfiles)
    lines.append(f"  report: snakemake --report results/report.html{configs}")
    return "\n".join(lines) + "\n"

