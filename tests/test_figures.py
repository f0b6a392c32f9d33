"""The figures (:mod:`soseleto.report.figures`) draw the panels their data call for."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.metrics import pr_curve
from soseleto.report import figures


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_appendix_c_figures_draw():
    per_class = pd.DataFrame({"label": list(range(10)) * 2, "percent_good": np.linspace(0, 100, 20), "seed": [0] * 10 + [1] * 10})
    assert len(figures.figure3(per_class, threshold=0.8).axes[0].patches) == 10
    imgs = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert len(figures.figure4(imgs, imgs[:0], threshold=0.8, bad_quantile=0.1).axes) == 2
    assert len(figures.figure5(imgs, np.zeros(5), np.arange(5)).axes) == 8


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
    fig = figures.label_error_pr(pd.concat(curves), points)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 3


def test_figure1_draws_five_panels():
    rng = np.random.default_rng(0)
    points = pd.concat([pd.DataFrame({"x0": rng.uniform(-1, 1, 30), "x1": rng.uniform(-1, 1, 30),
                                      "label": rng.integers(0, 2, 30), "noisy": np.arange(30) % 5 == 0,
                                      "alpha": rng.random(30), "seed": s}) for s in (0, 1)], ignore_index=True)
    hist = pd.concat([pd.DataFrame({"epoch": np.tile(np.arange(4), 2), "group": ["clean"] * 4 + ["noisy"] * 4,
                                    "mean_alpha": rng.random(8), "ci95": 0.05, "seed": s}) for s in (0, 1)])
    fig = figures.figure1(points[points.seed == 0], hist, points, threshold=0.1, seed=0)
    assert len(fig.axes) == 5 and len(fig.axes[4].lines) == 4  # three curves and the threshold


def test_figure2_confusion_curves_and_histograms_draw_a_panel_each():
    curves = pd.DataFrame({"noise": [0.3] * 3 + [0.5] * 3, "fraction_kept": [0.2, 0.6, 1.0] * 2,
                           "effective_noise": [0.1, 0.2, 0.3, 0.2, 0.4, 0.5]})
    assert len(figures.figure2(curves).axes[0].lines) == 3  # two noise levels and the half-way line
    fig = figures.confusion_heatmaps({"0.3": np.eye(3), "0.5": np.full((3, 3), 1 / 3)})
    assert len([ax for ax in fig.axes if ax.get_title()]) == 2
    acc = pd.DataFrame({"noise": [0.3] * 8, "method": ["a"] * 4 + ["b"] * 4, "seed": [0, 0, 1, 1] * 2,
                        "epoch": [1, 2] * 4, "test_accuracy": np.linspace(0.1, 0.8, 8)})
    fig = figures.accuracy_curves(acc, panel="noise", panel_label="noise", title="t")
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2 and fig.axes[0].get_title() == "noise 0.3"
    alpha = pd.DataFrame({"noise": [0.3] * 6 + [0.5] * 6, "alpha": np.linspace(0, 1.1, 12), "noisy": [True, False] * 6})
    fig = figures.alpha_histograms(alpha, panel="noise", panel_label="noise", group="noisy", title="t")
    assert len(fig.axes) == 2 and next(t.get_text() for t in fig.axes[0].get_legend().get_texts()).startswith("clean")


def test_generated_data_is_marked_from_the_inputs_provenance(tmp_path):
    import json

    from soseleto.report.marks import GENERATED, generated_mark

    def run(name, source, dataset):
        path = tmp_path / name
        path.write_text("alpha\n1.0\n")
        prov = {"config": {"split": {"dataset": dataset}, "data": {"source": source}}}
        (tmp_path / f"{name}.provenance.json").write_text(json.dumps(prov))
        return path

    assert generated_mark([run("a.csv", "generated", "cifar10")]) == GENERATED
    assert generated_mark([run("b.csv", "torchvision", "cifar10")]) == ""
    assert generated_mark([run("c.csv", "generated", "digits.npz")]) == ""  # a file is never replaced
    curves = pd.DataFrame({"noise": [0.3] * 2, "fraction_kept": [0.5, 1.0], "effective_noise": [0.1, 0.3]})
    ax = figures.figure2(curves, data="cifar10" + GENERATED).axes[0]
    assert GENERATED in ax.get_title() and "half of the source kept" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_figure3_legend_and_figure4_height_follow_the_data():
    per_class = pd.DataFrame({"label": range(10), "percent_good": np.linspace(0, 100, 10), "seed": 0})
    ax = figures.figure3(per_class, threshold=0.8, target_classes=(5, 6, 7, 8, 9)).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["not a target class", "also a target class"]
    imgs = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    assert figures.figure4(imgs, imgs[:7], threshold=0.8, bad_quantile=0.1).get_figheight() < 3  # two rows of images
