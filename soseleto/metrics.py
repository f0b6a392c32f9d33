"""Metrics of the per-sample weights as a detector of corrupted labels.

Convention: a sample is *flagged* (predicted corrupted / irrelevant) when ``alpha < threshold``;
the positives are the truly corrupted samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def threshold_metrics(alpha: np.ndarray, noisy: np.ndarray, threshold: float) -> dict[str, float]:
    """Counts and rates at one threshold.

    Parameters
    ----------
    alpha : (N,) float array of weights.
    noisy : (N,) bool array, True where the label is corrupted.

    Returns
    -------
    dict with ``correct`` (fraction of samples accounted correctly: clean kept + noisy flagged,
    the paper's 98.4%), ``recall`` (noisy flagged / noisy), ``precision`` (noisy among flagged),
    ``clean_kept`` (clean with alpha >= threshold / clean), ``noisy_flagged`` and ``clean_kept_n``.
    """
    alpha, noisy = np.asarray(alpha, dtype=float), np.asarray(noisy, dtype=bool)
    if alpha.shape != noisy.shape or alpha.ndim != 1:
        raise ValueError(f"alpha {alpha.shape} and noisy {noisy.shape} must be 1-D of equal length")
    flagged = alpha < threshold
    tp = int((flagged & noisy).sum())
    kept_clean = int((~flagged & ~noisy).sum())
    n_noisy, n_clean = int(noisy.sum()), int((~noisy).sum())
    return {
        "threshold": float(threshold),
        "correct": (tp + kept_clean) / len(alpha),
        "recall": tp / n_noisy if n_noisy else float("nan"),
        "precision": tp / int(flagged.sum()) if flagged.any() else float("nan"),
        "clean_kept": kept_clean / n_clean if n_clean else float("nan"),
        "noisy_flagged_n": tp,
        "clean_kept_n": kept_clean,
    }


def threshold_curve(alpha: np.ndarray, noisy: np.ndarray, thresholds: np.ndarray) -> pd.DataFrame:
    """:func:`threshold_metrics` for each threshold, one row each."""
    return pd.DataFrame([threshold_metrics(alpha, noisy, t) for t in thresholds])


def group_mean_ci(values: np.ndarray, mask: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of the normal 95% confidence interval of ``values[:, mask]`` per row.

    ``values`` is ``(T, N)`` (e.g. alpha after each epoch); returns two ``(T,)`` arrays.
    """
    sub = np.asarray(values)[:, np.asarray(mask, dtype=bool)]
    n = sub.shape[1]
    mean = sub.mean(axis=1)
    half = z * sub.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(mean)
    return mean, half
