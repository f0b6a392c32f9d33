"""Section 4.1 / Figure 1: the synthetic problem (:mod:`soseleto.experiments.synthetic`), its
summary table (:mod:`soseleto.report.synthetic`) and the ``soseleto synthetic`` command."""

import json

import numpy as np
import pandas as pd
import pytest

from soseleto.cli import main as cli_main
from soseleto.config import SyntheticConfig
from soseleto.experiments import synthetic
from soseleto.report.synthetic import write_summary

from builders import soseleto_config


def test_make_synthetic_flips_exactly_n_noisy_labels():
    d = synthetic.make_synthetic(200, 40, 30, seed=3)
    assert int(d.noisy.sum()) == 40
    assert bool(((d.source.y != d.y_true) == d.noisy).all())
    assert bool((d.y_true == (d.source.x[:, 0] > 0).long()).all())
    assert bool((d.target.y == (d.target.x[:, 0] > 0).long()).all())
    assert len(d.target) == 30


def test_short_run_separates_clean_from_noisy():
    cfg = SyntheticConfig(
        n_source=300, n_noisy=60, n_target=40,
        trainer=soseleto_config(lr_p=0.3, lr_alpha=200.0, alpha_init=0.5, source_batch=300, target_batch=40, epochs=40),
    )
    run = synthetic.run_synthetic(cfg, seed=0, device="cpu")
    assert run.alpha_history.shape == (41, 300)
    assert np.all(run.alpha_history[0] == 0.5)
    noisy = run.data.noisy.numpy()
    final = run.alpha_history[-1]
    assert final[~noisy].mean() > 0.6 > 0.2 > final[noisy].mean()
    assert run.target_accuracy > 0.9


SMALL = SyntheticConfig(seeds=(0,), n_source=60, n_noisy=10, n_target=10,
                        trainer=soseleto_config(epochs=3, source_batch=60, target_batch=10, alpha_init=0.5, lr_p=0.1))


def test_run_and_save_writes_tables_with_provenance(tmp_path):
    out = {k: tmp_path / f"{k}.x" for k in ("points", "history", "metrics")}
    summary = synthetic.run_and_save(SMALL, seed=0, device="cpu", outputs=out)
    points = pd.read_csv(out["points"])
    assert list(points.columns) == ["index", "x0", "x1", "label", "true_label", "noisy", "alpha"]
    assert len(points) == 60 and points.noisy.sum() == 10
    hist = pd.read_csv(out["history"])
    assert set(hist.group) == {"clean", "noisy"} and hist.epoch.max() == 3
    metrics = json.loads(out["metrics"].read_text())
    assert metrics["provenance"]["config"]["trainer"]["epochs"] == 3
    assert metrics["provenance"]["seed"] == 0
    assert summary["correct_at_0.1"] == pytest.approx(metrics["summary"]["correct_at_0.1"])
    assert json.loads((tmp_path / "points.x.provenance.json").read_text())["seed"] == 0
    table = write_summary([out["metrics"]], tmp_path / "summary.csv")
    expected = {"seed", "correct_at_0.1", "clean_mean_alpha", "noisy_mean_alpha", "noisy_below_0.1", "clean_above_0.1"}
    assert expected <= set(table.columns)
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "summary.csv.provenance.json").exists()


def test_seed_summary_by_hand():
    points = pd.DataFrame({"alpha": [0.9, 0.05, 0.5, 0.0, 0.2, 0.01],
                           "noisy": [False, False, False, True, True, True]})
    s = synthetic.seed_summary(points, seed=4, threshold=0.1, target_accuracy=0.75)
    assert s["seed"] == 4 and s["test_accuracy"] == 0.75 and (s["n_noisy"], s["n_clean"]) == (3, 3)
    assert s["correct_at_0.1"] == pytest.approx(4 / 6)
    assert s["noisy_below_0.1"] == pytest.approx(2 / 3) and s["clean_above_0.1"] == pytest.approx(2 / 3)
    assert s["clean_mean_alpha"] == pytest.approx(1.45 / 3) and s["noisy_mean_alpha"] == pytest.approx(0.21 / 3)
    clean = synthetic.seed_summary(points.assign(noisy=False), seed=0, threshold=0.25, target_accuracy=1.0)
    assert np.isnan(clean["noisy_mean_alpha"]) and "correct_at_0.25" in clean


def test_write_summary_sorts_by_seed(tmp_path):
    paths = []
    for seed in (2, 0, 1):
        paths.append(tmp_path / f"{seed}.json")
        paths[-1].write_text(json.dumps({"summary": {"seed": seed, "correct_at_0.1": seed / 10},
                                         "provenance": {"config": {"n_source": 5}}}))
    table = write_summary([str(p) for p in paths], str(tmp_path / "summary.csv"))
    assert table.seed.tolist() == [0, 1, 2]
    assert pd.read_csv(tmp_path / "summary.csv")["correct_at_0.1"].tolist() == [0.0, 0.1, 0.2]
    assert json.loads((tmp_path / "summary.csv.provenance.json").read_text())["seeds"] == [0, 1, 2]


def test_cli_runs_one_seed_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synthetic:\n  n_source: 40\n  n_noisy: 5\n  n_target: 8\n  trainer:\n    epochs: 2\n"
                   "    source_batch: 40\n    target_batch: 8\n")
    out = tmp_path / "out"
    assert cli_main(["synthetic", "--config", str(cfg), "--seed", "1", "--device", "cpu", "--outdir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".provenance.json")) == \
        ["alpha.csv", "history.csv", "metrics.json"]
    assert json.loads((out / "metrics.json").read_text())["summary"]["seed"] == 1
    assert len(pd.read_csv(out / "alpha.csv")) == 40


@pytest.mark.parametrize("text,needle", [("noisy: {}\n", "no 'synthetic' section"),
                                         ("synthetic:\n  trainer:\n    lr_pp: 0.1\n", "synthetic.trainer.lr_pp")])
def test_cli_names_a_bad_config(tmp_path, capsys, text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert cli_main(["synthetic", "--config", str(cfg), "--device", "cpu", "--outdir", str(tmp_path / "o")]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "o").exists()
