"""Label-error detection: one row per (noise level, detector, seed) and the precision-recall figure.

Each detector of the registry flags the samples whose score is below its ``threshold``, fixed a
priori rather than tuned on the truth (:mod:`soseleto.config.methods`: SOSELETO alpha < 0.1, the
threshold of the paper's Figure 1; L2RW's mean normalised weight < 0.5, on average less than half
the uniform share of its batches); ``cleanlab`` has no threshold but its own ``find_label_issues``
mask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from soseleto.config import methods as registry
from soseleto.io import provenance, save_figure, write_csv, write_markdown
from soseleto.metrics import TOP_K, detection_metrics, pr_curve

log = logging.getLogger(__name__)

METRICS = ("precision", "recall", "f1", "auroc", "average_precision")
# the rendered table: the threshold metrics, the ranking metrics, what a reviewer checking the k most
# suspect samples finds, and what the detector cost
SHOWN = METRICS + tuple(f"precision_at_{k}" for k in TOP_K) + ("wall_seconds",)


def threshold(method: str) -> float:
    """The registry's detection threshold of ``method`` (a ``ValueError`` for a method that is none)."""
    known = [m.name for m in registry.detectors("noisy")]
    if method not in known:
        raise ValueError(f"method={method!r} has no natural threshold; choose one of {known + ['cleanlab']}")
    return registry.get("noisy", method).threshold


def run_metrics(frame: pd.DataFrame, method: str) -> dict[str, float]:
    """:func:`soseleto.metrics.detection_metrics` of one run's table (``alpha`` or ``score``
    column, ``noisy``; ``flagged`` for cleanlab) at the method's natural threshold."""
    scores = frame["alpha" if "alpha" in frame.columns else "score"].to_numpy(dtype=float)
    noisy = frame["noisy"].to_numpy(dtype=bool)
    if method == "cleanlab":
        return detection_metrics(scores, noisy, flagged=frame["flagged"].to_numpy(dtype=bool))
    return detection_metrics(scores, noisy, threshold=threshold(method))


def job_cost(benchmark: str | None) -> dict[str, float]:
    """``wall_seconds`` and ``cpu_seconds`` of the job that made a detector's scores, from its
    Snakemake benchmark file (``s``, ``cpu_time``); NaN without one. A cleanlab job trains its k
    networks; a SOSELETO, L2RW or Meta-Weight-Net job trains its one network and has its scores.
    The wall time is the one to read: Snakemake samples ``cpu_time`` every few tens of seconds and
    misses the end of a short job."""
    if not benchmark or not Path(benchmark).is_file():
        return {"cpu_seconds": float("nan"), "wall_seconds": float("nan")}
    b = pd.read_csv(benchmark, sep="\t")
    return {"cpu_seconds": float(b["cpu_time"].iloc[-1]), "wall_seconds": float(b["s"].iloc[-1])}


def label_error_table(rows: Iterable[Mapping]) -> pd.DataFrame:
    """One row per run from dicts holding at least ``method``, ``seed`` and the :data:`METRICS`
    (e.g. ``{**detection_metrics(...), "method": "l2rw", "noise": 0.3, "seed": 0}``); key columns first."""
    df = pd.DataFrame(list(rows))
    missing = [c for c in ("method", "seed", *METRICS) if c not in df.columns]
    if missing:
        raise ValueError(f"label-error rows lack column(s) {missing}")
    keys = [c for c in ("noise", "method", "seed") if c in df.columns]
    rest = [c for c in df.columns if c not in keys]
    return df[keys + rest].sort_values(keys, kind="stable").reset_index(drop=True)


def summarize(df: pd.DataFrame, *, by: tuple[str, ...] = ("noise", "method"), metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of each metric: columns ``<m>_mean``,
    ``<m>_std`` and ``n_seeds``, one row per group of ``by`` (columns absent from ``df`` are skipped)."""
    by = [c for c in by if c in df.columns]
    g = df.groupby(by, sort=False)[list(metrics)]
    mean, std = g.mean().add_suffix("_mean"), g.std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)[[f"{m}_{s}" for m in metrics for s in ("mean", "std")]]
    out["n_seeds"] = df.groupby(by, sort=False)["seed"].nunique()
    return out.reset_index()


def mean_std_markdown(summary: pd.DataFrame, *, keys: tuple[str, ...] = ("noise", "method"),
                      metrics: tuple[str, ...] = METRICS, digits: int = 3) -> str:
    """A markdown table of a :func:`summarize` result with ``mean ± std`` cells (std omitted for one seed)."""
    keys = [k for k in keys if k in summary.columns]
    head = keys + list(metrics) + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in summary.iterrows():
        cells = [str(row[k]) for k in keys]
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            d = 0 if m.endswith("seconds") else digits
            cells.append("n/a" if pd.isna(mean) else f"{mean:.{d}f}" + ("" if pd.isna(std) else f" ± {std:.{d}f}"))
        cells.append(str(int(row["n_seeds"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_label_errors(runs: list[Mapping[str, Any]], *, out_csv: str, out_md: str, figures: list[str]) -> pd.DataFrame:
    """``label_errors.csv`` (noise, method, seed, precision, recall, f1, auroc, average_precision,
    n_flagged, n_noisy, threshold), ``label_errors.md`` (mean ± std over seeds) and the
    precision-recall figure (``figures``: PNG/PDF paths) from the :func:`detection_runs` files."""
    from soseleto.report.figures import label_error_pr
    from soseleto.report.marks import generated_mark

    rows, curves = [], []
    for run in runs:
        key = {"noise": float(run["noise"]), "method": run["method"], "seed": int(run["seed"])}
        frame = pd.read_csv(run["path"])
        rows.append({**key, **run_metrics(frame, run["method"]), **job_cost(run.get("benchmark"))})
        score = frame["alpha" if "alpha" in frame.columns else "score"]
        curves.append(pr_curve(score.to_numpy(dtype=float), frame["noisy"].to_numpy(dtype=bool)).assign(**key))
    table = label_error_table(rows)
    used = sorted({r["method"] for r in runs} - {"cleanlab"}, key=[m.name for m in registry.detectors()].index)
    thresholds = {m: threshold(m) for m in used}
    prov = provenance(inputs=[str(r["path"]) for r in runs], thresholds=thresholds)
    write_csv(table, out_csv, prov=prov)
    rules = [f"{registry.get('noisy', m).label} {'alpha' if registry.get('noisy', m).scores == 'alpha' else 'score'} "
             f"< {t:g}" for m, t in thresholds.items()] + [
        "cleanlab: its find_label_issues mask"]
    md = mean_std_markdown(summarize(table, metrics=SHOWN), metrics=SHOWN) + (
        "\nFlagging the truly corrupted source labels. Precision, recall and F1 at each method's natural "
        f"threshold ({', '.join(rules)}); AUROC and average precision of the ranking by score; "
        f"precision_at_k: the corrupted fraction among the k lowest scores ({', '.join(map(str, TOP_K))}); "
        "wall_seconds: wall time of the job that made the scores, as it ran here (cleanlab's trains its k folds' "
        "networks; the others' train the one network whose scores they are). Mean ± sample std over seeds; n/a = undefined "
        "(nothing flagged, fewer samples than k, or no benchmark file).\n")
    write_markdown(md, out_md, prov=prov)
    log.info("label errors:\n%s", md)
    fig = label_error_pr(pd.concat(curves, ignore_index=True), table,
                         title_suffix=generated_mark([r["path"] for r in runs]))
    for out in figures:
        save_figure(fig, out, prov=prov)
    return table
