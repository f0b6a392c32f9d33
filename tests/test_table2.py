"""Table 2 and Appendix C from per-run files (:mod:`soseleto.report.table2`)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.config import DataConfig, to_dict
from soseleto.data import sets
from soseleto.report import figures
from soseleto.report import table2 as R

SVHN_MNIST = {"source": {"dataset": "svhn", "classes": [0, 1, 2, 3, 4]},
              "target": {"dataset": "mnist", "classes": [5, 6, 7, 8, 9]}}


def _record(method, n, seed, acc, source="torchvision", task=SVHN_MNIST):
    return {"method": method, "n_target": n, "seed": seed, "accuracy": acc,
            "provenance": {"config": {"data": {"source": source}, "task": task}}}


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
    md = R.table2_markdown(R.table2_tidy(records), data="paper")
    row = next(line for line in md.splitlines() if line.startswith("| SOSELETO |"))
    assert row == "| SOSELETO | no | 84.0 ± 4.0 (3 seeds) | 83.2 | 84.0 ± 4.0 (3 seeds) | 87.9 |"
    assert "| Two-stage SOSELETO | yes | not run | – | not run | > 92 |" in md
    assert "| Fine-tuned variant of Vinyals et al. (2016) | yes | – | – | – | 82.7 |" in md
    assert "stand-ins" not in md and "alpha frozen" not in md  # a method neither run nor in the paper: no row
    assert "not comparable" in R.table2_markdown(R.table2_tidy(records), data="generated")
    other = R.table2_markdown(R.table2_tidy(records), data="mnist5k 0-4 → mnist5k 5-9")
    assert "# Table 2: mnist5k 0-4 → mnist5k 5-9" in other and "for reference only" in other
    frozen = R.table2_markdown(R.table2_tidy(records + [_record("soseleto_frozen", 20, 0, 0.5)]), data="paper")
    assert "| SOSELETO, alpha frozen (lr_alpha = 0) | no | 50.0 (1 seed) | – | not run | – |" in frozen


def test_data_source_follows_the_provenance():
    assert R.data_source([_record("soseleto", 20, 0, 0.8)]) == "paper"
    assert R.data_source([_record("soseleto", 20, 0, 0.8, "generated")]) == "generated"
    swapped = {"source": SVHN_MNIST["target"], "target": SVHN_MNIST["source"]}
    assert R.data_source([_record("soseleto", 20, 0, 0.8, task=swapped)]) == "other"
    files = {"source": {"dataset": "data/mnist5k.npz", "classes": [0, 1, 2, 3, 4]},
             "target": {"dataset": "data/mnist5k.npz", "classes": [5, 7, 9]}}
    assert R.data_source([_record("soseleto", 20, 0, 0.8, task=files)]) == "mnist5k 0-4 → mnist5k 5,7,9"


def test_mixed_data_sources_and_unknown_methods_are_errors():
    with pytest.raises(ValueError, match="different data"):
        R.data_source([_record("soseleto", 20, 0, 0.8), _record("soseleto", 20, 1, 0.8, "generated")])
    with pytest.raises(ValueError, match="unknown method"):
        R.table2_tidy([_record("magic", 20, 0, 0.8)])


def test_write_table2(tmp_path):
    paths = []
    for i, r in enumerate([_record("soseleto", 20, 0, 0.8, "generated"), _record("target_only", 20, 0, 0.7, "generated")]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    tidy = R.write_table2([str(p) for p in paths], str(tmp_path / "t.csv"), str(tmp_path / "t.md"))
    assert len(tidy[tidy.source == "measured"]) == 2 and len(pd.read_csv(tmp_path / "t.csv")) == len(tidy)
    assert "not comparable" in (tmp_path / "t.md").read_text()
    assert json.loads((tmp_path / "t.md.provenance.json").read_text())["data_source"] == "generated"


def test_figure3_percentages_on_a_hand_example():
    alpha = pd.DataFrame({"label": [0, 0, 0, 0, 7, 7, 9],
                          "alpha": [0.9, 0.81, 0.8, 0.1, 1.1, 0.0, 0.5]})
    out = R.good_percent_by_class(alpha, 0.8).set_index("label")
    assert out.n.tolist() == [4, 2, 1] and out.n_good.tolist() == [2, 1, 0]  # 0.8 itself is not "above"
    assert out.percent_good.tolist() == pytest.approx([50.0, 50.0, 0.0])


def test_good_and_bad_instances_of_class_zero():
    alpha = pd.DataFrame({"index": np.arange(100, 120), "label": [0] * 10 + [1] * 10,
                          "alpha": np.r_[np.linspace(0, 1.1, 10), np.zeros(10)]})
    good, bad = R.good_and_bad(alpha, label=0, threshold=0.8, bad_quantile=0.2, n=3, seed=0)
    assert len(good) == 3 and (good.alpha > 0.8).all() and (good.label == 0).all()
    assert sorted(bad["index"]) == [100, 101]  # the lowest 20% of the 10 class-0 instances
    again, _ = R.good_and_bad(alpha, label=0, threshold=0.8, bad_quantile=0.2, n=3, seed=0)
    assert good["index"].tolist() == again["index"].tolist()


def test_appendix_c_accuracy_by_seed():
    acc = R.appendix_c_accuracy([_record("appendix_c", 25, 1, 0.9), _record("appendix_c", 25, 0, 0.8)])
    assert acc.seed.tolist() == [0, 1] and acc.accuracy_pct.tolist() == pytest.approx([80.0, 90.0])
    assert (acc.paper_accuracy_pct == R.PAPER_APPENDIX_C).all()


def test_alpha_separation_of_shared_and_other_source_classes():
    alpha = pd.DataFrame({"label": [0, 0, 1, 5, 5, 6], "alpha": [0.1, 0.9, 0.0, 1.0, 0.85, 0.2]})
    out = R.alpha_separation(alpha, [5, 6], threshold=0.8)
    assert out["mean_alpha_shared"] == pytest.approx((1.0 + 0.85 + 0.2) / 3)
    assert out["mean_alpha_other"] == pytest.approx(1.0 / 3)
    assert out["percent_good_shared"] == pytest.approx(200 / 3) and out["percent_good_other"] == pytest.approx(100 / 3)
    # pairs (shared, other) with the shared image above: 3 + 2 + 2 of 9 (0.9 beats 0.85 and 0.2)
    assert out["auroc_shared"] == pytest.approx(7 / 9)
    assert np.isnan(R.alpha_separation(alpha, [0, 1, 5, 6], threshold=0.8)["auroc_shared"])  # no "other" image
    flipped = R.alpha_separation(alpha.assign(alpha=-alpha.alpha), [5, 6], threshold=0.8)
    assert flipped["auroc_shared"] == pytest.approx(1 - 7 / 9)


def test_appendix_c_figures_show_the_source_images_of_their_rows(tmp_path, monkeypatch):
    data = DataConfig(source="generated", dir="unused", generated_train=200, generated_test=50)
    x, y = sets.load_labelled("svhn", "train", data)
    rows = np.flatnonzero(np.isin(y.numpy(), [0, 3]))  # a subset of the classes: rows != positions
    alpha = pd.DataFrame({"index": rows, "label": y.numpy()[rows], "alpha": np.linspace(0, 1.1, len(rows))})
    alpha.to_csv(tmp_path / "a.csv", index=False)
    task = {"source": {"dataset": "svhn", "classes": [0, 3]}, "target": {"dataset": "mnist", "classes": [5, 6]}}
    (tmp_path / "m.json").write_text(json.dumps(_record("appendix_c", 4, 0, 0.5, "generated", task)))
    shown = {}
    monkeypatch.setattr(figures, "figure4", lambda good, bad, **kw: shown.update(good=good, bad=bad) or figures.plt.figure())
    monkeypatch.setattr(figures, "figure5", lambda imgs, alphas, idx, **kw: shown.update(worst=imgs, idx=idx)
                        or figures.plt.figure())
    out = {"accuracy": str(tmp_path / "acc.csv"), "figure3_data": str(tmp_path / "f3.csv"),
           "figure3": [str(tmp_path / "f3.png")], "figure4": [str(tmp_path / "f4.png")],
           "figure5": [str(tmp_path / "f5.png")]}
    R.write_appendix_c([str(tmp_path / "m.json")], [str(tmp_path / "a.csv")], [0], to_dict(data), threshold=0.8,
                       bad_quantile=0.5, grid=4, lowest=3, outputs=out)
    worst = alpha[alpha.label == 0].nsmallest(3, "alpha")
    assert shown["idx"].tolist() == worst["index"].tolist()
    assert torch.equal(shown["worst"], x[torch.tensor(worst["index"].to_numpy())])
    assert all(int(y[i]) == 0 for i in shown["idx"])  # Figure 5 shows instances labelled 0


def test_write_appendix_c_writes_every_output(tmp_path):
    data = DataConfig(source="generated", dir="unused", generated_train=200, generated_test=50)
    _, y = sets.load_labelled("svhn", "train", data)
    paths, alphas = [], []
    for seed in (0, 1):
        alpha = pd.DataFrame({"index": np.arange(len(y)), "label": y.numpy(),
                              "alpha": np.random.default_rng(seed).random(len(y)) * 1.1})
        alphas.append(tmp_path / f"a{seed}.csv")
        alpha.to_csv(alphas[-1], index=False)
        paths.append(tmp_path / f"m{seed}.json")
        task = {"source": {"dataset": "svhn", "classes": list(range(10))}, "target": SVHN_MNIST["target"]}
        paths[-1].write_text(json.dumps(_record("appendix_c", 25, seed, 0.5 + seed / 10, "generated", task)))
    out = {"accuracy": str(tmp_path / "acc.csv"), "figure3_data": str(tmp_path / "f3.csv"),
           "figure3": [str(tmp_path / "f3.png")], "figure4": [str(tmp_path / "f4.png"), str(tmp_path / "f4.pdf")],
           "figure5": [str(tmp_path / "f5.png")]}
    R.write_appendix_c([str(p) for p in paths], [str(p) for p in alphas], [0, 1], to_dict(data), threshold=0.8,
                       bad_quantile=0.1, grid=4, lowest=3, outputs=out)
    acc = pd.read_csv(tmp_path / "acc.csv")
    assert acc.accuracy_pct.tolist() == pytest.approx([50.0, 60.0])
    assert acc.auroc_shared.between(0, 1).all() and acc.mean_alpha_shared.between(0, 1.1).all()  # random alpha
    f3 = pd.read_csv(tmp_path / "f3.csv")
    assert sorted(set(f3.seed)) == [0, 1] and set(f3.label) == set(y.tolist())
    for name in ("f3.png", "f4.png", "f4.pdf", "f5.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
