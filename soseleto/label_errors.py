"""Label-error detection in the Table 1 setting (beyond the paper).

Which runs yield per-sample scores of the noisy source (higher = believed clean), and how they
are scored against the truly corrupted labels (:mod:`soseleto.detection`):

* ``soseleto``: the final alpha (``alpha.csv`` of the SOSELETO run), flagged at alpha < 0.1;
* ``l2rw``: the mean normalised weight (``scores.csv`` of the L2RW run), flagged below 0.5;
* ``cleanlab``: self-confidence on out-of-fold predicted probabilities of the noisy baseline
  (:func:`run_cleanlab`, one job per noise level and seed), flagged by ``find_label_issues``.

:func:`write_label_errors` turns these files into ``label_errors.csv`` (one row per run),
``label_errors.md`` (mean ± std over seeds) and the precision-recall figure.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import pandas as pd

from soseleto import data
from soseleto.checkpoint import resume_path
from soseleto.config import to_dict
from soseleto.detection import (NATURAL_THRESHOLDS, cleanlab_scores, detection_metrics, label_error_table,
                                mean_std_markdown, out_of_fold_probs, pr_curve, summarise)
from soseleto.devices import resolve_device
from soseleto.io import atomic_path, provenance, save_figure, write_csv, write_json
from soseleto.models import build_classifier, build_features
from soseleto.noisy import DATASET, MODEL, config_from_mapping, load_sets, source_alpha_table

log = logging.getLogger(__name__)

DETECTORS = ("soseleto", "l2rw", "cleanlab")


def detection_runs(methods: list[str], noise_tags: list[str], seeds: list[int], *, run: str) -> list[dict[str, Any]]:
    """The runs that score the source, in table order: ``noise``, ``method``, ``seed`` and ``path``
    (``run`` is the run directory pattern with ``{noise}``, ``{method}``, ``{seed}``).

    ``soseleto`` and ``l2rw`` when they are among ``methods``; ``cleanlab`` (the noisy baseline's
    detector) when ``noisy_baseline`` is.
    """
    chosen = [m for m in ("soseleto", "l2rw") if m in methods] + (["cleanlab"] if "noisy_baseline" in methods else [])
    return [{"noise": float(n), "method": m, "seed": int(s),
             "path": run.format(noise=n, method=m, seed=s) + ("/alpha.csv" if m == "soseleto" else "/scores.csv")}
            for n in noise_tags for m in chosen for s in seeds]


def run_cleanlab(mapping: Mapping[str, Any], data_cfg: Mapping[str, Any], *, noise: float, seed: int, device: str,
                 split_csv: str, scores_csv: str) -> pd.DataFrame:
    """cleanlab on the noisy source of one (noise level, seed): out-of-fold softmax of
    ``cleanlab_folds`` CIFAR-10 Quick networks trained with the ``baseline`` settings, then
    self-confidence (``score``) and ``find_label_issues`` (``flagged``).

    Writes ``scores_csv`` (index, label, true_label, noisy, score, flagged; source order). Each
    fold's resumable state lives in ``<scores_csv>.resume.fold<k>``, so a killed job resumes.
    """
    cfg = config_from_mapping(mapping)
    dev = resolve_device(device)
    split = pd.read_csv(split_csv)
    source, _, _ = load_sets(data_cfg, split)

    def make_model():
        features, dim = build_features(MODEL, data.DATASETS[DATASET].shape)
        return features, build_classifier(dim, cfg.n_classes)

    log.info("cleanlab, noise %g, seed %d on %s: %d source, %d folds", noise, seed, dev, len(source), cfg.cleanlab_folds)
    probs = out_of_fold_probs(make_model, source, cfg.baseline, folds=cfg.cleanlab_folds, seed=seed, device=dev,
                              checkpoint=resume_path(scores_csv))
    quality, flagged = cleanlab_scores(source.y.numpy(), probs)
    table = source_alpha_table(split, quality, column="score").assign(flagged=flagged)
    prov = provenance({"noisy": dict(mapping), "data": dict(data_cfg)}, method="cleanlab", noise=noise, seed=seed,
                      device=str(dev), trainer=to_dict(cfg.baseline), folds=cfg.cleanlab_folds)
    write_csv(table, scores_csv, prov=prov)
    log.info("cleanlab, noise %g, seed %d: %d of %d flagged", noise, seed, int(flagged.sum()), len(flagged))
    return table


def run_metrics(frame: pd.DataFrame, method: str) -> dict[str, float]:
    """:func:`soseleto.detection.detection_metrics` of one run's table (``alpha`` or ``score``
    column, ``noisy``; ``flagged`` for cleanlab) at the method's natural threshold."""
    scores = frame["alpha" if "alpha" in frame.columns else "score"].to_numpy(dtype=float)
    noisy = frame["noisy"].to_numpy(dtype=bool)
    if method == "cleanlab":
        return detection_metrics(scores, noisy, flagged=frame["flagged"].to_numpy(dtype=bool))
    if method not in NATURAL_THRESHOLDS:
        raise ValueError(f"method={method!r} has no natural threshold; choose one of {DETECTORS}")
    return detection_metrics(scores, noisy, threshold=NATURAL_THRESHOLDS[method])


def write_label_errors(runs: list[Mapping[str, Any]], *, out_csv: str, out_md: str, figures: list[str]) -> pd.DataFrame:
    """``label_errors.csv`` (noise, method, seed, precision, recall, f1, auroc, average_precision,
    n_flagged, n_noisy, threshold), ``label_errors.md`` (mean ± std over seeds) and the
    precision-recall figure (``figures``: PNG/PDF paths) from the :func:`detection_runs` files."""
    from soseleto.plots import label_error_pr

    rows, curves = [], []
    for run in runs:
        key = {"noise": float(run["noise"]), "method": run["method"], "seed": int(run["seed"])}
        frame = pd.read_csv(run["path"])
        rows.append({**key, **run_metrics(frame, run["method"])})
        score = frame["alpha" if "alpha" in frame.columns else "score"]
        curves.append(pr_curve(score.to_numpy(dtype=float), frame["noisy"].to_numpy(dtype=bool)).assign(**key))
    table = label_error_table(rows)
    prov = provenance(inputs=[str(r["path"]) for r in runs], thresholds=NATURAL_THRESHOLDS)
    write_csv(table, out_csv, prov=prov)
    md = mean_std_markdown(summarise(table)) + (
        "\nFlagging the truly corrupted source labels. Precision, recall and F1 at each method's natural "
        f"threshold (SOSELETO alpha < {NATURAL_THRESHOLDS['soseleto']:g}, L2RW mean normalised weight < "
        f"{NATURAL_THRESHOLDS['l2rw']:g}, cleanlab: its find_label_issues mask); AUROC and average precision "
        "of the ranking by score. Mean ± sample std over seeds; n/a = undefined (nothing flagged).\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text(md)
    write_json(prov, f"{out_md}.provenance.json")
    log.info("label errors:\n%s", md)
    fig = label_error_pr(pd.concat(curves, ignore_index=True), table)
    for out in figures:
        save_figure(fig, out, prov=prov)
    return table

