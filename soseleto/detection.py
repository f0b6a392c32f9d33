"""Per-sample scores as detectors of corrupted labels: metrics, cleanlab, tables, suspects.

Convention: a *score* is higher for samples believed clean (SOSELETO's alpha, L2RW's mean weight,
cleanlab's self-confidence); the positives are the truly corrupted samples. Threshold metrics
flag ``score < threshold``; AUROC and average precision rank samples by ``-score``.

Natural thresholds (:data:`NATURAL_THRESHOLDS`), fixed a priori rather than tuned on the truth:

* ``soseleto``: alpha < 0.1, the threshold of the paper's Figure 1;
* ``l2rw``: mean normalised weight < 0.5, i.e. on average less than half the uniform share of its
  batches (:mod:`soseleto.peers_reweight`; a sample rejected every time scores 0);
* ``cleanlab``: no threshold, cleanlab's own ``find_label_issues`` mask.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from soseleto.baselines import train_plain
from soseleto.config import TrainerConfig
from soseleto.evaluate import predict_proba
from soseleto.rng import seeded
from soseleto.trainer import Labeled

log = logging.getLogger(__name__)

NATURAL_THRESHOLDS: dict[str, float] = {"soseleto": 0.1, "l2rw": 0.5}
METRICS = ("precision", "recall", "f1", "auroc", "average_precision")


def detection_metrics(
    scores: np.ndarray,
    noisy: np.ndarray,
    *,
    threshold: float | None = None,
    flagged: np.ndarray | None = None,
    higher_is_clean: bool = True,
) -> dict[str, float]:
    """Precision, recall and F1 of the flagged set, AUROC and average precision of the ranking.

    Parameters
    ----------
    scores : (N,) float
        Per-sample scores (higher = clean unless ``higher_is_clean=False``).
    noisy : (N,) bool
        True where the given label differs from the true one.
    threshold
        Flag ``scores < threshold`` (``> threshold`` when ``higher_is_clean=False``).
    flagged : (N,) bool, optional
        The flagged set itself (e.g. cleanlab's mask), instead of ``threshold``.

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``auroc``, ``average_precision``, ``n_flagged``,
    ``n_noisy``, ``threshold`` (NaN when ``flagged`` was given). Undefined values are NaN:
    precision with nothing flagged, recall/AUROC/AP without corrupted (or without clean) samples.
    """
    scores = np.asarray(scores, dtype=float)
    noisy = _bool_array("noisy", noisy, scores.shape)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores contain {int((~np.isfinite(scores)).sum())} non-finite values")
    if (threshold is None) == (flagged is None):
        raise ValueError("give exactly one of threshold and flagged")
    suspicion = -scores if higher_is_clean else scores
    if flagged is None:
        flagged = scores < threshold if higher_is_clean else scores > threshold
    else:
        flagged = _bool_array("flagged", flagged, scores.shape)
    tp, n_flagged, n_noisy = int((flagged & noisy).sum()), int(flagged.sum()), int(noisy.sum())
    precision = tp / n_flagged if n_flagged else float("nan")
    recall = tp / n_noisy if n_noisy else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else precision + recall  # 0 or NaN
    both = 0 < n_noisy < len(noisy)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auroc": float(roc_auc_score(noisy, suspicion)) if both else float("nan"),
        "average_precision": float(average_precision_score(noisy, suspicion)) if both else float("nan"),
        "n_flagged": n_flagged,
        "n_noisy": n_noisy,
        "threshold": float("nan") if threshold is None else float(threshold),
    }


def pr_curve(scores: np.ndarray, noisy: np.ndarray, *, higher_is_clean: bool = True) -> pd.DataFrame:
    """Precision-recall curve of flagging corrupted labels by ``scores``.

    Returns a DataFrame with ``recall``, ``precision`` and ``threshold`` (the score at or below
    which samples are flagged; NaN on the final point recall=0), ordered by increasing recall.
    """
    scores = np.asarray(scores, dtype=float)
    noisy = _bool_array("noisy", noisy, scores.shape)
    precision, recall, thr = precision_recall_curve(noisy, -scores if higher_is_clean else scores)
    thr = np.append(-thr if higher_is_clean else thr, np.nan)
    return pd.DataFrame({"recall": recall, "precision": precision, "threshold": thr}).iloc[::-1].reset_index(drop=True)


def cleanlab_scores(noisy_labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's self-confidence ``(N,)`` (``pred_probs[j, label_j]``, higher = clean) and its
    ``find_label_issues`` mask ``(N,)`` (default ``prune_by_noise_rate``), single process.

    ``pred_probs`` ``(N, K)`` must be out-of-sample (see :func:`out_of_fold_probs`).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(noisy_labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=float)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"noisy_labels {labels.shape} and pred_probs {probs.shape} must be (N,) and (N, K)")
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    mask = find_label_issues(labels, probs, n_jobs=1)
    return np.asarray(quality, dtype=float), np.asarray(mask, dtype=bool)


def out_of_fold_probs(
    make_model: Callable[[], tuple[nn.Module, nn.Module]],
    source: Labeled,
    cfg: TrainerConfig,
    *,
    folds: int,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
) -> np.ndarray:
    """Softmax ``(N, K)`` of each source sample by a network that never saw it (the noisy baseline).

    The source is split into ``folds`` stratified folds (by its given labels, shuffled with
    ``seed``); for each, a fresh ``make_model()`` (built under ``seeded(seed * 1000 + fold)``) is
    trained with :func:`soseleto.baselines.train_plain` on the other folds and predicts the held-out
    one. ``checkpoint``: a path prefix; fold ``k`` resumes from ``<checkpoint>.fold<k>``.
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r} is invalid: expected an integer >= 2")
    y = source.y.cpu().numpy()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = None
    for fold, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        with seeded(seed * 1000 + fold):
            features, head = make_model()
        tr, held = torch.as_tensor(train_idx), torch.as_tensor(held_idx)
        train_plain(
            features, head, Labeled(source.x[tr], source.y[tr]), cfg, seed=seed * 1000 + fold, device=device,
            checkpoint=None if checkpoint is None else f"{checkpoint}.fold{fold}",
        )
        probs = predict_proba(features, head, source.x[held]).cpu().double().numpy()
        if out is None:
            out = np.zeros((len(y), probs.shape[1]))
        out[held_idx] = probs
        log.info("out-of-fold probabilities: fold %d/%d done", fold + 1, folds)
    return out


def suspects(scores: np.ndarray, *, labels: np.ndarray | None = None, higher_is_clean: bool = True,
             flagged: np.ndarray | None = None) -> pd.DataFrame:
    """Source samples ranked from most to least suspicious: ``rank`` (1 = most suspicious),
    ``index`` (row in the source set), ``score``, and ``label`` / ``flagged`` when given."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(scores if higher_is_clean else -scores, kind="stable")
    df = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "index": order, "score": scores[order]})
    if labels is not None:
        df["label"] = np.asarray(labels)[order]
    if flagged is not None:
        df["flagged"] = _bool_array("flagged", flagged, scores.shape)[order]
    return df


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


def summarise(df: pd.DataFrame, *, by: tuple[str, ...] = ("noise", "method"), metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
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
    """A markdown table of a :func:`summarise` result with ``mean ± std`` cells (std omitted for one seed)."""
    keys = [k for k in keys if k in summary.columns]
    head = keys + list(metrics) + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in summary.iterrows():
        cells = [str(row[k]) for k in keys]
        for m in metrics:
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            cells.append("n/a" if pd.isna(mean) else f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}"))
        cells.append(str(int(row["n_seeds"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _bool_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape} but scores have {shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise TypeError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
    return arr.astype(bool)
