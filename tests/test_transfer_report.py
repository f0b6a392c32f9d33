import numpy as np
import pandas as pd
import pytest
import torch

from soseleto import plots, transfer_report as R


def _record(method, n, seed, acc, source="torchvision"):
    return {"method": method, "n_target": n, "seed": seed, "accuracy": acc,
            "provenance": {"config": {"data": {"source": source}}}}


def test_table2_mean_and_std_over_seeds():
    records = [_record("soseleto", 20, s, a) for s, a in enumerate([0.80, 0.84, 0.88])]
    records += [_record("target_only", 25, 0, 0.9)]
    tidy = R.table2_tidy(records)
    measured = tidy[tidy.source == "measured"]
    assert len(measured) == 4 and measured.accuracy_pct.max() == pytest.approx(90.0)
    s = R.table2_summary(tidy).set_index(["method", "n_target"])
    assert s.loc[("soseleto", 20), "mean"] == pytest.approx(84.0)
    assert s.loc[("soseleto", 20), "std"] == pytest.approx(4.0)  # sample std of 80, 84, 88
    assert s.loc[("soseleto", 20), "n_seeds"] == 3 and np.isnan(s.loc[("target_only", 25), "std"])
    paper = tidy[tidy.source == "paper"].set_index(["method", "n_target"]).accuracy_pct
    assert paper[("soseleto", 25)] == 87.9 and paper[("luo_label_efficient", 20)] == 94.2 and ("vinyals_ft", 20) not in paper
    assert tidy.loc[tidy.method == "vinyals", "uses_unlabelled"].all()


def test_table2_markdown_puts_measured_beside_paper():
    records = [_record("soseleto", n, s, a) for n in (20, 25) for s, a in enumerate([0.80, 0.84, 0.88])]
    md = R.table2_markdown(R.table2_tidy(records), data="torchvision")
    row = next(line for line in md.splitlines() if line.startswith("| SOSELETO |"))
    assert row == "| SOSELETO | no | 84.0 ± 4.0 (3 seeds) | 83.2 | 84.0 ± 4.0 (3 seeds) | 87.9 |"
    assert "| Two-stage SOSELETO | yes | not run | – | not run | > 92 |" in md
    assert "| Fine-tuned variant of Vinyals et al. (2016) | yes | – | – | – | 82.7 |" in md
    assert "stand-ins" not in md
    assert "not comparable" in R.table2_markdown(R.table2_tidy(records), data="generated")


def test_mixed_data_sources_and_unknown_methods_are_errors():
    with pytest.raises(ValueError, match="different data sources"):
        R.data_source([_record("soseleto", 20, 0, 0.8), _record("soseleto", 20, 1, 0.8, "generated")])
    with pytest.raises(ValueError, match="unknown method"):
        R.table2_tidy([_record("magic", 20, 0, 0.8)])


def test_figure3_percentages_on_a_hand_example():
    alpha = pd.DataFrame({"label": [0, 0, 0, 0, 7, 7, 9],
                          "alpha": [0.9, 0.81, 0.8, 0.1, 1.1, 0.0, 0.5]})
    out = R.good_percent_by_class(alpha, 0.8).set_index("label")
    assert out.n.tolist() == [4, 2, 1] and out.n_good.tolist() == [2, 1, 0]  # 0.8 itself is not "above"
    assert out.percent_good.tolist() == pytest.approx([50.0, 50.0, 0.0])


def test_good_and_bad_instances_of_class_zero():
    alpha = pd.DataFrame({"svhn_index": np.arange(100, 120), "label": [0] * 10 + [1] * 10,
                          "alpha": np.r_[np.linspace(0, 1.1, 10), np.zeros(10)]})
    good, bad = R.good_and_bad(alpha, label=0, threshold=0.8, bad_quantile=0.2, n=3, seed=0)
    assert len(good) == 3 and (good.alpha > 0.8).all() and (good.label == 0).all()
    assert sorted(bad.svhn_index) == [100, 101]  # the lowest 20% of the 10 class-0 instances
    again, _ = R.good_and_bad(alpha, label=0, threshold=0.8, bad_quantile=0.2, n=3, seed=0)
    assert good.svhn_index.tolist() == again.svhn_index.tolist()


def test_appendix_c_figures_draw():
    per_class = pd.DataFrame({"label": list(range(10)) * 2, "percent_good": np.linspace(0, 100, 20), "seed": [0] * 10 + [1] * 10})
    assert len(plots.figure3(per_class, threshold=0.8).axes[0].patches) == 10
    imgs = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert len(plots.figure4(imgs, imgs[:0], threshold=0.8, bad_quantile=0.1).axes) == 2
    assert len(plots.figure5(imgs, np.zeros(5), np.arange(5)).axes) == 8
