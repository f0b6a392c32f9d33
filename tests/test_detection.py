import math

import numpy as np
import pandas as pd
import pytest

from soseleto import data
from soseleto.config import TrainerConfig
from soseleto.detection import (
    cleanlab_scores,
    detection_metrics,
    label_error_table,
    mean_std_markdown,
    out_of_fold_probs,
    pr_curve,
    summarise,
    suspects,
)
from soseleto.models import build_classifier, build_features
from soseleto.noise import confusion_matrix, corrupt_labels
from soseleto.plots import label_error_pr
from soseleto.trainer import Labeled


def test_detection_metrics_by_hand():
    scores = np.array([0.05, 0.2, 0.9, 0.08, 1.0, 0.5])
    noisy = np.array([True, True, False, False, False, True])
    m = detection_metrics(scores, noisy, threshold=0.1)
    # flagged: 0.05 (noisy), 0.08 (clean) -> precision 1/2, recall 1/3
    assert (m["n_flagged"], m["n_noisy"]) == (2, 3)
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    # ranking by -score: noisy {0.05, 0.2, 0.5} vs clean {0.08, 0.9, 1.0}; pairs won: 2 + 2 + 3 of 9
    assert m["auroc"] == pytest.approx(7 / 9)
    # AP: noisy found at ranks 1, 3, 4 (order 0.05, 0.08, 0.2, 0.5): (1/1 + 2/3 + 3/4) / 3
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    flipped = detection_metrics(-scores, noisy, threshold=-0.1, higher_is_clean=False)
    assert {k: flipped[k] for k in ("precision", "recall", "auroc")} == {k: m[k] for k in ("precision", "recall", "auroc")}


def test_detection_metrics_with_mask_and_degenerate_cases():
    scores, noisy = np.array([0.1, 0.9, 0.5]), np.array([True, False, False])
    m = detection_metrics(scores, noisy, flagged=np.array([1, 0, 1]))
    assert m["precision"] == 0.5 and m["recall"] == 1.0 and math.isnan(m["threshold"])
    none = detection_metrics(scores, noisy, threshold=0.0)
    assert none["n_flagged"] == 0 and math.isnan(none["precision"]) and math.isnan(none["f1"])
    wrong = detection_metrics(scores, noisy, flagged=np.array([False, True, False]))
    assert wrong["precision"] == 0 and wrong["f1"] == 0
    clean = detection_metrics(scores, np.zeros(3, dtype=bool), threshold=0.2)
    assert math.isnan(clean["recall"]) and math.isnan(clean["auroc"])
    with pytest.raises(ValueError, match="exactly one"):
        detection_metrics(scores, noisy)
    with pytest.raises(ValueError, match="shape"):
        detection_metrics(scores, noisy[:2], threshold=0.1)
    with pytest.raises(ValueError, match="non-finite"):
        detection_metrics(np.array([0.1, np.nan, 0.2]), noisy, threshold=0.1)


def test_pr_curve_agrees_with_threshold_metrics():
    rng = np.random.default_rng(0)
    noisy = rng.random(200) < 0.3
    scores = rng.random(200) - 0.5 * noisy
    curve = pr_curve(scores, noisy)
    assert curve.recall.is_monotonic_increasing and curve.recall.iloc[-1] == 1.0
    row = curve.iloc[len(curve) // 2]
    m = detection_metrics(scores, noisy, threshold=np.nextafter(row.threshold, np.inf))  # flags score <= thr
    assert (m["precision"], m["recall"]) == pytest.approx((row.precision, row.recall))


def test_cleanlab_flags_flipped_labels_from_good_probabilities():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), y_true] = 0.9
    noisy = rng.random(300) < 0.2
    labels = np.where(noisy, (y_true + 1) % 3, y_true)
    quality, mask = cleanlab_scores(labels, probs)
    np.testing.assert_allclose(quality, probs[np.arange(300), labels])  # self-confidence
    m = detection_metrics(quality, noisy, flagged=mask)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["auroc"] == 1.0
    with pytest.raises(ValueError, match="must be"):
        cleanlab_scores(labels[:10], probs)


def test_out_of_fold_probs_never_see_the_sample():
    x, y = data.generated("mnist", "train", 120, seed=0)
    noisy_y = corrupt_labels(y, confusion_matrix(10, 0.3, seed=0), seed=1)
    source = Labeled(data.to_float(x), noisy_y)

    def make():
        f, d = build_features("mlp", (1, 28, 28), hidden=16, depth=1)
        return f, build_classifier(d, 10)

    cfg = TrainerConfig(lr_p=0.05, momentum=0.9, source_batch=16, epochs=2)
    probs = out_of_fold_probs(make, source, cfg, folds=2, seed=0)
    assert probs.shape == (120, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    again = out_of_fold_probs(make, source, cfg, folds=2, seed=0)
    np.testing.assert_array_equal(probs, again)
    with pytest.raises(ValueError, match="folds"):
        out_of_fold_probs(make, source, cfg, folds=1, seed=0)


def test_suspects_rank_most_suspicious_first():
    df = suspects(np.array([0.5, 0.1, 0.9]), labels=np.array([2, 0, 1]), flagged=np.array([False, True, False]))
    assert df["index"].tolist() == [1, 0, 2] and df["rank"].tolist() == [1, 2, 3]
    assert df["label"].tolist() == [0, 2, 1] and df["flagged"].tolist() == [True, False, False]


def _rows():
    rows = []
    for method, base in (("soseleto", 0.8), ("l2rw", 0.6)):
        for seed in range(3):
            m = {k: base + 0.01 * seed for k in ("precision", "recall", "f1", "auroc", "average_precision")}
            rows.append({"method": method, "noise": 0.3, "seed": seed, **m, "n_flagged": 10})
    return rows


def test_label_error_table_summary_and_markdown():
    df = label_error_table(_rows())
    assert list(df.columns[:3]) == ["noise", "method", "seed"] and len(df) == 6
    s = summarise(df)
    row = s[s.method == "l2rw"].iloc[0]
    assert row.auroc_mean == pytest.approx(0.61) and row.auroc_std == pytest.approx(0.01) and row.n_seeds == 3
    md = mean_std_markdown(s)
    assert "| 0.3 | l2rw | 0.610 ± 0.010 |" in md and md.count("\n") == 4
    with pytest.raises(ValueError, match="auroc"):
        label_error_table([{"method": "x", "seed": 0, "precision": 1}])


def test_pr_figure_draws_a_panel_per_noise_level():
    rng = np.random.default_rng(0)
    curves = []
    for noise in (0.3, 0.5):
        for method in ("soseleto", "cleanlab"):
            for seed in range(2):
                noisy = rng.random(100) < noise
                c = pr_curve(rng.random(100) - noisy, noisy)
                curves.append(c.assign(noise=noise, method=method, seed=seed))
    points = pd.DataFrame([{"noise": 0.3, "method": "soseleto", "precision": 0.8, "recall": 0.6, "seed": 0}])
    fig = label_error_pr(pd.concat(curves), points)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 3
