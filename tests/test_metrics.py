import numpy as np
import pytest

from soseleto.metrics import group_mean_ci, threshold_curve, threshold_metrics


def test_threshold_metrics_counts():
    alpha = np.array([0.9, 0.05, 0.5, 0.0, 0.2, 0.01])
    noisy = np.array([False, False, False, True, True, True])
    m = threshold_metrics(alpha, noisy, 0.1)
    # flagged: idx 1 (clean), 3, 5 (noisy)
    assert m["noisy_flagged_n"] == 2 and m["clean_kept_n"] == 2
    assert m["correct"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["clean_kept"] == pytest.approx(2 / 3)


def test_threshold_curve_is_monotone_in_recall():
    rng = np.random.default_rng(0)
    alpha, noisy = rng.random(100), rng.random(100) < 0.3
    curve = threshold_curve(alpha, noisy, np.linspace(0, 1, 11))
    assert np.all(np.diff(curve.recall) >= 0)
    assert curve.recall.iloc[-1] == 1.0 or alpha[noisy].max() >= 1.0


def test_group_mean_ci():
    values = np.array([[1.0, 3.0, 10.0], [2.0, 2.0, 0.0]])
    mean, half = group_mean_ci(values, np.array([True, True, False]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(half, [1.96 * np.sqrt(2) / np.sqrt(2), 0.0])


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="equal length"):
        threshold_metrics(np.zeros(3), np.zeros(4, dtype=bool), 0.1)
