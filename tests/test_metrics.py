"""Per-sample scores as detectors of corrupted labels (:mod:`soseleto.metrics`)."""

import math

import numpy as np
import pytest

from soseleto.metrics import detection_metrics, group_mean_ci, pr_curve, threshold_curve


def test_threshold_counts_correct_and_clean_kept():
    alpha = np.array([0.9, 0.05, 0.5, 0.0, 0.2, 0.01])
    noisy = np.array([False, False, False, True, True, True])
    m = detection_metrics(alpha, noisy, threshold=0.1)
    # flagged: idx 1 (clean), 3, 5 (noisy)
    assert m["n_flagged"] == 3 and m["n_noisy"] == 3 and m["threshold"] == 0.1
    assert round(m["precision"] * m["n_flagged"]) == 2  # noisy flagged
    assert round(m["clean_kept"] * 3) == 2  # clean kept, of 3 clean
    assert m["correct"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["clean_kept"] == pytest.approx(2 / 3)


def test_detection_metrics_by_hand():
    scores = np.array([0.05, 0.2, 0.9, 0.08, 1.0, 0.5])
    noisy = np.array([True, True, False, False, False, True])
    m = detection_metrics(scores, noisy, threshold=0.1)
    # flagged: 0.05 (noisy), 0.08 (clean) -> precision 1/2, recall 1/3
    assert (m["n_flagged"], m["n_noisy"]) == (2, 3)
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert m["correct"] == pytest.approx(3 / 6) and m["clean_kept"] == pytest.approx(2 / 3)
    # ranking by -score: noisy {0.05, 0.2, 0.5} vs clean {0.08, 0.9, 1.0}; pairs won: 2 + 2 + 3 of 9
    assert m["auroc"] == pytest.approx(7 / 9)
    # AP: noisy found at ranks 1, 3, 4 (order 0.05, 0.08, 0.2, 0.5): (1/1 + 2/3 + 3/4) / 3
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    flipped = detection_metrics(-scores, noisy, threshold=-0.1, higher_is_clean=False)
    keys = ("precision", "recall", "auroc", "correct", "clean_kept")
    assert {k: flipped[k] for k in keys} == {k: m[k] for k in keys}


def test_detection_metrics_with_mask_and_degenerate_cases():
    scores, noisy = np.array([0.1, 0.9, 0.5]), np.array([True, False, False])
    m = detection_metrics(scores, noisy, flagged=np.array([1, 0, 1]))
    assert m["precision"] == 0.5 and m["recall"] == 1.0 and math.isnan(m["threshold"])
    assert m["correct"] == pytest.approx(2 / 3) and m["clean_kept"] == 0.5
    none = detection_metrics(scores, noisy, threshold=0.0)
    assert none["n_flagged"] == 0 and math.isnan(none["precision"]) and math.isnan(none["f1"])
    wrong = detection_metrics(scores, noisy, flagged=np.array([False, True, False]))
    assert wrong["precision"] == 0 and wrong["f1"] == 0
    clean = detection_metrics(scores, np.zeros(3, dtype=bool), threshold=0.2)
    assert math.isnan(clean["recall"]) and math.isnan(clean["auroc"]) and clean["clean_kept"] == pytest.approx(2 / 3)
    all_noisy = detection_metrics(scores, np.ones(3, dtype=bool), threshold=0.2)
    assert math.isnan(all_noisy["clean_kept"]) and math.isnan(all_noisy["average_precision"])
    with pytest.raises(ValueError, match="exactly one"):
        detection_metrics(scores, noisy)
    with pytest.raises(ValueError, match="exactly one"):
        detection_metrics(scores, noisy, threshold=0.1, flagged=noisy)
    with pytest.raises(ValueError, match="shape"):
        detection_metrics(scores, noisy[:2], threshold=0.1)
    with pytest.raises(ValueError, match="shape"):
        detection_metrics(np.zeros(3), np.zeros(4, dtype=bool), threshold=0.1)
    with pytest.raises(ValueError, match="non-finite"):
        detection_metrics(np.array([0.1, np.nan, 0.2]), noisy, threshold=0.1)
    with pytest.raises(TypeError, match="boolean"):
        detection_metrics(scores, np.array([0, 2, 1]), threshold=0.1)


def test_threshold_curve_is_monotone_in_recall():
    rng = np.random.default_rng(0)
    alpha, noisy = rng.random(100), rng.random(100) < 0.3
    curve = threshold_curve(alpha, noisy, np.linspace(0, 1, 11))
    assert len(curve) == 11 and curve.threshold.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert np.all(np.diff(curve.recall) >= 0)
    assert curve.recall.iloc[-1] == 1.0 or alpha[noisy].max() >= 1.0
    assert {"correct", "recall", "clean_kept"} <= set(curve.columns)  # what Figure 1 (e) plots


def test_pr_curve_agrees_with_threshold_metrics():
    rng = np.random.default_rng(0)
    noisy = rng.random(200) < 0.3
    scores = rng.random(200) - 0.5 * noisy
    curve = pr_curve(scores, noisy)
    assert curve.recall.is_monotonic_increasing and curve.recall.iloc[-1] == 1.0
    row = curve.iloc[len(curve) // 2]
    m = detection_metrics(scores, noisy, threshold=np.nextafter(row.threshold, np.inf))  # flags score <= thr
    assert (m["precision"], m["recall"]) == pytest.approx((row.precision, row.recall))
    assert curve.recall.iloc[0] == 0 and math.isnan(curve.threshold.iloc[0])


def test_group_mean_ci():
    values = np.array([[1.0, 3.0, 10.0], [2.0, 2.0, 0.0]])
    mean, half = group_mean_ci(values, np.array([True, True, False]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(half, [1.96 * np.sqrt(2) / np.sqrt(2), 0.0])
    mean, half = group_mean_ci(values, np.array([False, False, True]))  # one sample: no spread
    np.testing.assert_allclose(mean, [10.0, 0.0])
    np.testing.assert_allclose(half, [0.0, 0.0])


def test_precision_among_the_most_suspect_samples():
    scores = np.array([0.9, 0.01, 0.5, 0.02, 0.03, 0.8])
    noisy = np.array([False, True, False, False, True, False])
    m = detection_metrics(scores, noisy, threshold=0.1, top=(1, 3, 7))
    # most suspect first: 0.01 (noisy), 0.02 (clean), 0.03 (noisy)
    assert m["precision_at_1"] == 1.0 and m["precision_at_3"] == pytest.approx(2 / 3)
    assert np.isnan(m["precision_at_7"])  # fewer samples than k
    assert detection_metrics(-scores, noisy, threshold=-0.1, higher_is_clean=False, top=(3,))["precision_at_3"] == \
        pytest.approx(2 / 3)
