import json

import numpy as np
import pandas as pd
import pytest

from soseleto import synthetic
from soseleto.config import SyntheticConfig, TrainerConfig


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
        trainer=TrainerConfig(lr_p=0.3, lr_alpha=200.0, alpha_init=0.5, source_batch=300, target_batch=40, epochs=40),
    )
    run = synthetic.run_synthetic(cfg, seed=0, device="cpu")
    assert run.alpha_history.shape == (41, 300)
    assert np.all(run.alpha_history[0] == 0.5)
    noisy = run.data.noisy.numpy()
    final = run.alpha_history[-1]
    assert final[~noisy].mean() > 0.6 > 0.2 > final[noisy].mean()
    assert run.target_accuracy > 0.9


def test_run_and_save_writes_tables_with_provenance(tmp_path):
    mapping = {"seeds": [0], "n_source": 60, "n_noisy": 10, "n_target": 10,
               "trainer": {"epochs": 3, "source_batch": 60, "target_batch": 10, "alpha_init": 0.5, "lr_p": 0.1}}
    out = {k: tmp_path / f"{k}.x" for k in ("points_csv", "history_csv", "metrics_json")}
    summary = synthetic.run_and_save(mapping, seed=0, device="cpu", **out)
    points = pd.read_csv(out["points_csv"])
    assert list(points.columns) == ["index", "x0", "x1", "label", "true_label", "noisy", "alpha"]
    assert len(points) == 60 and points.noisy.sum() == 10
    hist = pd.read_csv(out["history_csv"])
    assert set(hist.group) == {"clean", "noisy"} and hist.epoch.max() == 3
    metrics = json.loads(out["metrics_json"].read_text())
    assert metrics["provenance"]["config"]["trainer"]["epochs"] == 3
    assert metrics["provenance"]["seed"] == 0
    assert summary["correct_at_0.1"] == pytest.approx(metrics["summary"]["correct_at_0.1"])
    assert json.loads((tmp_path / "points_csv.x.provenance.json").read_text())["seed"] == 0
    table = synthetic.write_summary([out["metrics_json"]], tmp_path / "summary.csv")
    expected = {"seed", "correct_at_0.1", "clean_mean_alpha", "noisy_mean_alpha", "noisy_below_0.1", "clean_above_0.1"}
    assert expected <= set(table.columns)


def test_unknown_key_in_synthetic_section_is_named():
    with pytest.raises(ValueError, match=r"synthetic\.trainer\.lr_pp"):
        synthetic.config_from_mapping({"seeds": [0], "trainer": {"lr_pp": 0.1}})
