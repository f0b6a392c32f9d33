"""Label noise by a confusion matrix (the Sukhbaatar et al. 2014 / Xiao et al. 2015 protocol).

For an overall noise level ``p``, row ``i`` of the matrix ``C`` is the distribution of the noisy
label given the true label ``i``: ``C[i, i] = 1 - p`` and the off-diagonal entries are random,
non-negative and sum to ``p``.
"""

from __future__ import annotations

import numpy as np
import torch

from soseleto.core.rng import generator


def confusion_matrix(n_classes: int, noise: float, *, seed: int) -> np.ndarray:
    """Row-stochastic ``(K, K)`` matrix with diagonal ``1 - noise`` and random off-diagonals."""
    if not 0 <= noise < 1:
        raise ValueError(f"noise={noise!r} is invalid: expected 0 <= noise < 1")
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes} must be at least 2")
    rng = np.random.default_rng(seed)
    off = rng.random((n_classes, n_classes))
    np.fill_diagonal(off, 0.0)
    off *= noise / off.sum(axis=1, keepdims=True)
    return off + np.eye(n_classes) * (1.0 - noise)


def corrupt_labels(y: torch.Tensor, matrix: np.ndarray, *, seed: int) -> torch.Tensor:
    """Resample every label from its row of ``matrix``: ``y_noisy[j] ~ C[y[j], :]``. Shape ``(N,)``."""
    c = torch.as_tensor(np.asarray(matrix), dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or not torch.allclose(c.sum(1), torch.ones(len(c), dtype=c.dtype)):
        raise ValueError(f"matrix of shape {tuple(c.shape)} is not a square row-stochastic matrix")
    if int(y.max()) >= len(c) or int(y.min()) < 0:
        raise ValueError(f"labels span [{int(y.min())}, {int(y.max())}] but the matrix has {len(c)} classes")
    return torch.multinomial(c[y], 1, generator=generator(seed)).flatten()
