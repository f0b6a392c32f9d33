"""Names in result paths, and the run lists of the workflow. Snakemake imports this module to
build the DAG, so it imports neither torch nor pandas.

Result paths name their data: ``results/noisy/<data set>/...`` for the Table 1 protocol and
``results/transfer/<source>_<classes>-to-<target>_<classes>/...`` for the Table 2 protocol, with a
data set named by :func:`dataset_tag`.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from soseleto.config import DATASET_NAMES, SideConfig
from soseleto.config import methods as registry


STEP_COST_CSV = "results/benchmarks/step_cost.csv"  # soseleto bench, the step_cost rule
SHARE_COST_CSV = "results/benchmarks/share_cost.csv"  # python -m soseleto.cost.share, the share_cost rule


def dataset_tag(dataset: str) -> str:
    """A torchvision set's name, or a file's / folder's name without ``.npz``: ``mnist5k``. Braces
    become parentheses (``a{1}.npz`` -> ``a(1)``): in a Snakemake path they would open a wildcard.
    Other characters stay; where a rule matches tags by a regex it escapes them (``re.escape``)."""
    if dataset.lower() in DATASET_NAMES:
        return dataset.lower()
    return PurePath(dataset).name.removesuffix(".npz").translate(_BRACES)


_BRACES = str.maketrans("{}", "()")


def manifest(dataset: str) -> str:
    """The file the ``dataset`` rule writes once a data set is in place (downloaded if configured)."""
    return f"results/data/{dataset_tag(dataset)}.json"


def classes_tag(classes) -> str:
    """File-name tag of a class list: ``(0, 1, 2, 3, 4) -> '01234'``, ``(10, 11) -> '10.11'``."""
    return ("" if max(classes) < 10 else ".").join(str(int(c)) for c in classes)


def side_tag(side: SideConfig) -> str:
    return f"{dataset_tag(side.dataset)}_{classes_tag(side.classes)}"


def transfer_tag(source: SideConfig, target: SideConfig) -> str:
    """``svhn_01234-to-mnist_56789``: the task of a transfer run."""
    return f"{side_tag(source)}-to-{side_tag(target)}"


def noise_tag(noise: float) -> str:
    """How a noise level appears in paths and wildcards: ``0.3`` -> ``'0.3'``."""
    return f"{float(noise):g}"


def detection_runs(methods, noise_tags, seeds, *, run: str, bench: str | None = None,
                   cleanlab: bool = True) -> list[dict[str, Any]]:
    """The runs that score the source, in table order: ``noise``, ``method``, ``seed``, ``path``
    (``run`` is the run directory pattern with ``{noise}``, ``{method}``, ``{seed}``) and, with
    ``bench`` (the same fields), ``benchmark``: the Snakemake benchmark file of the job, whose CPU
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
