"""Per-sample scores as detectors of corrupted labels, and confidence intervals.

Convention: a *score* is higher for samples believed clean (SOSELETO's alpha, L2RW's mean weight,
cleanlab's self-confidence); the positives are the truly corrupted samples. Threshold metrics flag
``score < threshold``; AUROC and average precision rank samples by ``-score``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

TOP_K = (100, 500)  # precision among the k most suspect samples: what a reviewer checks by hand


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """AUROC of ``score`` (higher = more likely positive) for the bool labels ``positive``, both
    ``(N,)``; NaN when not both kinds are present (undefined)."""
    return float(roc_auc_score(positive, score)) if 0 < positive.sum() < len(positive) else float("nan")


def detection_metrics(
    scores: np.ndarray,
    noisy: np.ndarray,
    *,
    threshold: float | None = None,
    flagged: np.ndarray | None = None,
    higher_is_clean: bool = True,
    top: tuple[int, ...] = TOP_K,
) -> dict[str, float]:
    """Precision, recall and F1 of the flagged set; AUROC, average precision, precision at k of the ranking.

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
    top
        The ``k`` of ``precision_at_<k>`` (:func:`precision_at`).

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``auroc``, ``average_precision``, ``n_flagged``,
    ``n_noisy``, ``threshold`` (NaN when ``flagged`` was given), ``correct`` (the fraction of
    samples accounted for correctly: clean kept + corrupted flagged, the paper's 98.4% in section
    4.1), ``clean_kept`` (clean samples not flagged / clean samples) and ``precision_at_<k>``.
    Undefined values are NaN: precision with nothing flagged, recall/AUROC/AP without corrupted (or
    without clean) samples.
    """
    scores, noisy = _checked(scores, noisy)
    if (threshold is None) == (flagged is None):
        raise ValueError("give exactly one of threshold and flagged")
    suspicion = -scores if higher_is_clean else scores
    if flagged is None:
        flagged = scores < threshold if higher_is_clean else scores > threshold
    else:
        flagged = _bool_array("flagged", flagged, scores.shape)
    tp, n_flagged, n_noisy = int((flagged & noisy).sum()), int(flagged.sum()), int(noisy.sum())
    kept_clean, n_clean = int((~flagged & ~noisy).sum()), len(noisy) - n_noisy
    precision = tp / n_flagged if n_flagged else float("nan")
    recall = tp / n_noisy if n_noisy else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else precision + recall  # 0 or NaN
    both = 0 < n_noisy < len(noisy)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auroc": auroc(noisy, suspicion),
        "average_precision": float(average_precision_score(noisy, suspicion)) if both else float("nan"),
        "n_flagged": n_flagged,
        "n_noisy": n_noisy,
        "threshold": float("nan") if threshold is None else float(threshold),
        "correct": (tp + kept_clean) / len(noisy),
        "clean_kept": kept_clean / n_clean if n_clean else float("nan"),
        **{f"precision_at_{k}": precision_at(suspicion, noisy, k) for k in top},
    }


def _checked(scores: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    noisy = _bool_array("noisy", noisy, scores.shape)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores contain {int((~np.isfinite(scores)).sum())} non-finite values")
    return scores, noisy


def precision_at(suspicion: np.ndarray, noisy: np.ndarray, k: int) -> float:
    """The fraction of ``noisy`` among the ``k`` samples of highest ``suspicion`` (what a reviewer
    who checks the ``k`` most suspect samples by hand finds; stable order on ties); NaN when there
    are fewer than ``k`` samples."""
    if k > len(suspicion):
        return float("nan")
    order = np.argsort(-suspicion, kind="stable")[:k]
    return float(noisy[order].mean())


def threshold_curve(scores: np.ndarray, noisy: np.ndarray, thresholds: np.ndarray) -> pd.DataFrame:
    """:func:`detection_metrics` at each threshold, one row each (Figure 1 (e))."""
    return pd.DataFrame([detection_metrics(scores, noisy, threshold=t) for t in thresholds])


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


def group_mean_ci(values: np.ndarray, mask: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the normal 95% confidence interval of ``values[:, mask]`` per row.

    ``values`` is ``(T, N)`` (e.g. alpha after each epoch); returns two ``(T,)`` arrays.
    """
    sub = np.asarray(values)[:, np.asarray(mask, dtype=bool)]
    n = sub.shape[1]
    mean = sub.mean(axis=1)
    half = z * sub.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, half


def _bool_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape} but scores have {shape}")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise TypeError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
    return arr.astype(bool)
