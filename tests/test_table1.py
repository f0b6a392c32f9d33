"""Table 1 and Figure 2 from per-run files (:mod:`soseleto.report.table1`)."""

import json

import numpy as np
import pandas as pd
import pytest

from soseleto.report import table1

CIFAR10 = {"split": {"dataset": "cifar10"}, "data": {"source": "torchvision"}}


def _metrics(tmp_path, rows, config=CIFAR10):
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(rows):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps({**row, "provenance": {"config": config}}))
    return [str(p) for p in paths]


def test_kept_noise_curve_on_a_hand_example():
    curve = table1.kept_noise_curve(np.array([0.9, 0.5, 0.1, 0.5]), np.array([False, True, True, False]))
    assert curve.threshold.tolist() == [-np.inf, 0.1, 0.5]  # ties at 0.5 cannot be split
    assert curve.fraction_kept.tolist() == [1.0, 0.75, 0.25]
    np.testing.assert_allclose(curve.effective_noise, [0.5, 1 / 3, 0.0])
    with pytest.raises(ValueError, match="equal length"):
        table1.kept_noise_curve(np.zeros(3), np.zeros(2, dtype=bool))


def test_mean_curve_interpolates_and_averages_over_seeds():
    a = pd.DataFrame({"fraction_kept": [1.0, 0.5], "effective_noise": [0.4, 0.2]})
    b = pd.DataFrame({"fraction_kept": [1.0, 0.0 + 0.25], "effective_noise": [0.4, 0.0]})
    m = table1.mean_curve([a, b], np.array([0.25, 0.5, 0.75, 1.0]))
    # a is undefined below 0.5 (keeps at least half); b is linear from (0.25, 0) to (1, 0.4)
    np.testing.assert_allclose(m.effective_noise, [0.0, (0.2 + 0.4 / 3) / 2, (0.3 + 0.8 / 3) / 2, 0.4])
    assert m.n_seeds.tolist() == [1, 2, 2, 2]


def test_figure2_data_per_noise_level(tmp_path):
    paths = []
    for i, noisy in enumerate(([False, True, True, False], [True, False, False, False])):
        paths.append(tmp_path / f"a{i}.csv")
        pd.DataFrame({"alpha": [0.9, 0.5, 0.1, 0.5], "noisy": noisy}).to_csv(paths[-1], index=False)
    curves = table1.figure2_data([str(p) for p in paths], [0.3, 0.5], points=4)
    assert list(curves.columns) == ["noise", "fraction_kept", "effective_noise", "n_seeds"]
    assert curves.noise.tolist() == [0.3] * 4 + [0.5] * 4 and curves.fraction_kept.tolist() == [0.25, 0.5, 0.75, 1.0] * 2
    np.testing.assert_allclose(curves.effective_noise[curves.noise == 0.3], [0.0, 1 / 6, 1 / 3, 0.5])


def test_side_by_side_table_has_every_method(tmp_path):
    rows = [{"noise": 0.3, "method": m, "seed": seed, "accuracy": a + 0.02 * seed}
            for m, a in [("soseleto", 0.7), ("l2rw", 0.6), ("noise_layer", 0.5), ("noisy_baseline", 0.4)]
            for seed in (0, 1)]
    paths = _metrics(tmp_path, rows)
    table = table1.write_table1(paths, tmp_path / "p.csv", tmp_path / "p.md", side_by_side=True)
    assert table.method.unique().tolist() == ["noisy_baseline", "soseleto", "l2rw", "noise_layer"]
    head, _, row = (tmp_path / "p.md").read_text().splitlines()[:3]
    assert "Learning to Reweight (`l2rw`)" in head and "noise-adaptation layer (`noise_layer`)" in head
    assert row == "| 30% | 41.00 ± 1.41 | 71.00 ± 1.41 | 61.00 ± 1.41 | 51.00 ± 1.41 |"
    # table1.md keeps to the paper's rows
    table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    assert "Reweight" not in (tmp_path / "t.md").read_text()


def test_table_mean_and_std_over_seeds(tmp_path):
    rows = [(0.3, "soseleto", 0, 0.70), (0.3, "soseleto", 1, 0.74), (0.3, "noisy_baseline", 0, 0.60),
            (0.3, "noisy_baseline", 1, 0.66), (0.45, "soseleto", 0, 0.5), (0.45, "soseleto", 1, 0.5)]
    paths = _metrics(tmp_path, [{"noise": n, "method": m, "seed": s, "accuracy": a} for n, m, s, a in rows])
    table = table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    assert list(table.columns) == ["noise", "method", "seed", "accuracy", "accuracy_at_best_validation", "best_epoch",
                                  "realised_noise"]
    assert table.accuracy_at_best_validation.isna().all()  # no validation split
    assert table.method.tolist()[:4] == ["noisy_baseline", "noisy_baseline", "soseleto", "soseleto"]
    summary = table1.summarize(table).set_index(["noise", "method"])
    assert summary.loc[(0.3, "soseleto"), "mean"] == pytest.approx(72.0)
    assert summary.loc[(0.3, "soseleto"), "std"] == pytest.approx(np.sqrt(8))  # sample std of 70, 74
    assert summary.loc[(0.3, "noisy_baseline"), "std"] == pytest.approx(np.sqrt(18))
    md = (tmp_path / "t.md").read_text()
    assert "###" not in md  # one table, as in the paper
    row30 = next(line for line in md.splitlines() if line.startswith("| 30%"))
    assert "72.00 ± 2.83" in row30 and "72.41" in row30 and "63.00 ± 4.24" in row30 and "65.57" in row30
    assert "69.73" in row30 and "69.81" in row30
    row45 = next(line for line in md.splitlines() if line.startswith("| 45%"))
    assert "50.00 ± 0.00" in row45 and row45.count("—") >= 3  # no paper numbers for 45%
    saved = pd.read_csv(tmp_path / "t.csv")
    assert saved.accuracy.tolist() == table.accuracy.tolist()
    assert json.loads((tmp_path / "t.md.provenance.json").read_text())["data"] == "paper"


def test_one_seed_shows_no_spread(tmp_path):
    paths = _metrics(tmp_path, [{"noise": 0.3, "method": "soseleto", "seed": 0, "accuracy": 0.5}])
    summary = table1.summarize(table1.collect(paths)[0])
    assert np.isnan(summary["std"][0]) and summary.n.tolist() == [1]
    table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    row = next(line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| 30%"))
    assert "| 50.00 | 72.41 |" in row


def test_best_validation_table_and_other_data(tmp_path):
    rows = [{"noise": 0.3, "method": m, "seed": s, "accuracy": a, "accuracy_at_best_validation": b, "best_epoch": 2}
            for m, s, a, b in [("soseleto", 0, 0.70, 0.80), ("soseleto", 1, 0.74, 0.82),
                               ("noisy_baseline", 0, 0.6, 0.6), ("noisy_baseline", 1, 0.6, 0.62)]]
    config = {"split": {"dataset": "data/mnist5k.npz"}, "data": {"source": "torchvision"}}
    paths = _metrics(tmp_path, rows, config)
    table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    md = (tmp_path / "t.md").read_text()
    assert "### At the end of training" in md and "### At the epoch of best validation accuracy" in md
    end, best = md.split("### At the epoch of best validation accuracy")
    assert "72.00 ± 2.83" in end and "81.00 ± 1.41" in best and "61.00 ± 1.41" in best
    assert "72.41" not in md and "Xiao" not in md and "(mnist5k)" in md  # no paper numbers for other data
    assert pd.read_csv(tmp_path / "t.csv").best_epoch.tolist() == [2, 2, 2, 2]
    generated = _metrics(tmp_path / "g", rows, {"split": {"dataset": "cifar10"}, "data": {"source": "generated"}})
    assert table1.collect(generated)[1] == "generated cifar10"
    with pytest.raises(ValueError, match="different data"):
        table1.collect(paths + generated)


def test_figure2_confusion_and_histogram_files(tmp_path):
    alpha_csvs, confusion_csvs = [], []
    rng = np.random.default_rng(0)
    for noise in (0.3, 0.5):
        alpha_csvs.append(tmp_path / f"a{noise}.csv")
        pd.DataFrame({"alpha": rng.random(50) * 1.1, "noisy": rng.random(50) < noise}).to_csv(alpha_csvs[-1], index=False)
        confusion_csvs.append(tmp_path / f"c{noise}.csv")
        pd.DataFrame({"true_label": [0, 1], "0": [1 - noise, noise], "1": [noise, 1 - noise]}).to_csv(
            confusion_csvs[-1], index=False)
    curves = table1.write_figure2([str(p) for p in alpha_csvs], [0.3, 0.5], out_csv=str(tmp_path / "f2.csv"),
                                  outputs=[str(tmp_path / "f2.png")])
    assert pd.read_csv(tmp_path / "f2.csv").shape == curves.shape == (200, 4)
    table1.write_confusion_figure([str(p) for p in confusion_csvs], [0.3, 0.5], [str(tmp_path / "c.png")])
    table1.write_alpha_histograms([str(p) for p in alpha_csvs], [0.3, 0.5], data="paper",
                                  outputs=[str(tmp_path / "h.png"), str(tmp_path / "h.pdf")])
    for name in ("f2.png", "c.png", "h.png", "h.pdf"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_leaders_compare_soseleto_with_the_strongest_alternative(tmp_path):
    # per seed: (soseleto, l2rw, mwnet, soseleto_frozen); the frozen ablation is not an alternative
    acc = {0.3: [(0.90, 0.85, 0.80, 0.99), (0.92, 0.86, 0.80, 0.99), (0.91, 0.85, 0.81, 0.99)],
           0.5: [(0.80, 0.84, 0.70, 0.99), (0.81, 0.80, 0.70, 0.99), (0.79, 0.82, 0.71, 0.99)]}
    rows = [{"noise": n, "method": m, "seed": s, "accuracy": a, "realised_noise": n - 0.01}
            for n, seeds in acc.items() for s, accs in enumerate(seeds)
            for m, a in zip(("soseleto", "l2rw", "mwnet", "soseleto_frozen"), accs)]
    lead = table1.leaders(pd.DataFrame(rows))
    assert lead.strongest.tolist() == ["l2rw", "l2rw"]
    np.testing.assert_allclose(lead.difference, [100 * (0.91 - 0.8533333), 100 * (0.80 - 0.82)], atol=1e-4)
    np.testing.assert_allclose(lead.difference_std[0], np.std([5, 6, 6], ddof=1), atol=1e-9)
    assert lead.verdict.tolist() == ["ahead", "within the seed spread"]  # 0.5: -2 points, spread 2
    table1.write_table1(_metrics(tmp_path, rows), tmp_path / "p.csv", tmp_path / "p.md", side_by_side=True)
    md = (tmp_path / "p.md").read_text()
    assert "| 30% (29.0% wrong) |" in md and "SOSELETO against the strongest alternative, at the end" in md
    assert "| 30% | 91.00 | Learning to Reweight | 85.33 | +5.67 ± 0.58 | ahead (seed spread 1.00) |" in md
