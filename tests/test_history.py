"""Per-epoch test accuracy of every run (:mod:`soseleto.report.history`)."""

import json
from pathlib import Path

import pandas as pd

from soseleto.report import history


def _run(tmp_path, name, method, seed, accs, noise=0.3, validation=None):
    rows = [{"epoch": i + 1, "loss_source": 1.0, "test_accuracy": a, "seconds": 1.0} for i, a in enumerate(accs)]
    for row, v in zip(rows, validation or []):
        row["validation_accuracy"] = v
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"noise": noise, "method": method, "seed": seed, "history": rows}))
    return str(path)


def test_history_frame_continues_the_fine_tune_after_its_baseline(tmp_path):
    paths = [_run(tmp_path, "b0", "noisy_baseline", 0, [0.1, 0.2, 0.3]),
             _run(tmp_path, "b1", "noisy_baseline", 1, [0.1, 0.2]),
             _run(tmp_path, "f0", "finetune", 0, [0.4, 0.5]),
             _run(tmp_path, "f1", "finetune", 1, [0.6], validation=[0.7]),
             _run(tmp_path, "s0", "soseleto", 0, [0.3, 0.4], noise=0.5)]
    df = history.history_frame(paths, panel="noise")
    assert list(df.columns[:5]) == ["noise", "method", "seed", "epoch", "test_accuracy"]
    fine = df[df.method == "finetune"]
    assert fine.epoch.tolist() == [4, 5, 3]  # after the 3 (seed 0) and 2 (seed 1) epochs of the baseline
    assert fine.validation_accuracy.tolist()[-1] == 0.7 and df[df.method == "soseleto"].epoch.tolist() == [1, 2]


def test_runs_without_test_accuracy_are_left_out_and_curves_are_written(tmp_path):
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps({"n_target": None, "method": "pretrain", "seed": 0,
                               "history": [{"epoch": 1, "loss_source": 1.0, "seconds": 1.0}]}))
    paths = [str(pre)] + [_run(tmp_path, f"s{s}", "soseleto", s, [0.2, 0.5, 0.4]) for s in (0, 1)]
    for p in map(Path, paths[1:]):
        p.write_text(json.dumps({**json.loads(p.read_text()), "n_target": 20}))
    outputs = [str(tmp_path / "c.png")]
    curves = history.write_curves(paths, panel="n_target", panel_label="n_t", title="t", out_csv=str(tmp_path / "c.csv"),
                                  outputs=outputs)
    assert len(curves) == 6 and set(curves.method) == {"soseleto"}
    assert pd.read_csv(tmp_path / "c.csv").test_accuracy.tolist() == [0.2, 0.5, 0.4] * 2
    assert (tmp_path / "c.png").stat().st_size > 1000
