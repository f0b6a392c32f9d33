"""Label-error detection in the Table 1 setting: which runs, their metrics, the table and figure."""

import numpy as np
import pandas as pd
import pytest

from soseleto import label_errors, noisy

DATA = {"source": "generated", "dir": "unused", "download": False, "generated_train": 160, "generated_test": 60}
RUN = "results/noisy/noise{noise}/{method}/seed{seed}"


def test_detection_runs_follow_the_methods():
    runs = label_errors.detection_runs(["noisy_baseline", "soseleto", "l2rw", "glc"], ["0.3", "0.5"], [0, 1], run=RUN)
    assert len(runs) == 2 * 3 * 2
    assert runs[0] == {"noise": 0.3, "method": "soseleto", "seed": 0, "path": "results/noisy/noise0.3/soseleto/seed0/alpha.csv"}
    assert {r["method"] for r in runs} == {"soseleto", "l2rw", "cleanlab"}
    assert runs[-1]["path"] == "results/noisy/noise0.5/cleanlab/seed1/scores.csv"
    # cleanlab belongs to the noisy baseline; no scoring method, no runs
    assert {r["method"] for r in label_errors.detection_runs(["soseleto"], ["0.3"], [0], run=RUN)} == {"soseleto"}
    assert label_errors.detection_runs(["finetune", "glc"], ["0.3"], [0], run=RUN) == []


def _frame(column, scores, noisy, **extra):
    return pd.DataFrame({"index": np.arange(len(scores)), "noisy": noisy, column: scores, **extra})


def test_run_metrics_use_each_natural_threshold():
    noisy_ = np.array([True, True, False, False, False])
    alpha = np.array([0.05, 0.5, 0.08, 0.9, 1.0])  # alpha < 0.1 flags samples 0 and 2
    m = label_errors.run_metrics(_frame("alpha", alpha, noisy_), "soseleto")
    assert (m["precision"], m["recall"], m["threshold"]) == (0.5, 0.5, 0.1)
    weight = np.array([0.2, 0.4, 0.45, 1.2, 1.0])  # < 0.5 flags 0, 1, 2
    m = label_errors.run_metrics(_frame("score", weight, noisy_), "l2rw")
    assert (m["precision"], m["recall"], m["auroc"]) == (pytest.approx(2 / 3), 1.0, 1.0)
    flagged = np.array([True, False, False, False, False])  # cleanlab: its own mask, not a threshold
    m = label_errors.run_metrics(_frame("score", weight, noisy_, flagged=flagged), "cleanlab")
    assert (m["precision"], m["recall"], m["n_flagged"]) == (1.0, 0.5, 1) and np.isnan(m["threshold"])
    with pytest.raises(ValueError, match="natural threshold"):
        label_errors.run_metrics(_frame("score", weight, noisy_), "glc")


def test_write_label_errors_table_markdown_and_figure(tmp_path):
    rng = np.random.default_rng(0)
    runs = []
    for noise in (0.3, 0.5):
        for method, column in (("soseleto", "alpha"), ("l2rw", "score"), ("cleanlab", "score")):
            for seed in (0, 1):
                wrong = rng.random(200) < noise
                score = rng.random(200) + np.where(wrong, -0.4, 0.6)
                extra = {"flagged": score < 0.3} if method == "cleanlab" else {}
                path = tmp_path / f"{noise}_{method}_{seed}.csv"
                _frame(column, score, wrong, **extra).to_csv(path, index=False)
                runs.append({"noise": noise, "method": method, "seed": seed, "path": str(path)})
    out = tmp_path / "out"
    figures = [str(out / "pr.png"), str(out / "pr.pdf")]
    table = label_errors.write_label_errors(runs, out_csv=str(out / "le.csv"), out_md=str(out / "le.md"), figures=figures)
    saved = pd.read_csv(out / "le.csv")
    assert list(saved.columns[:8]) == ["noise", "method", "seed", "precision", "recall", "f1", "auroc", "average_precision"]
    assert len(saved) == 12 and set(saved.method) == {"soseleto", "l2rw", "cleanlab"}
    assert saved[["precision", "recall", "f1", "auroc", "average_precision"]].stack().between(0, 1).all()
    assert (saved.auroc > 0.9).all()  # the scores separate the corrupted labels
    np.testing.assert_allclose(table.auroc, saved.auroc)
    md = (out / "le.md").read_text()
    assert md.count("\n| 0.") == 6 and "±" in md and "natural threshold" in md
    for fig in figures:
        assert (out / fig).stat().st_size > 5_000


def test_cleanlab_job_on_generated_data(tmp_path):
    mapping = {"n_target": 50, "cleanlab_folds": 2, "baseline": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 50, "epochs": 1}}
    split = tmp_path / "split.csv"
    noisy.write_split(mapping, DATA, noise=0.4, split_csv=split, confusion_csv=tmp_path / "c.csv", info_json=tmp_path / "s.json")
    out = tmp_path / "cleanlab" / "scores.csv"
    table = label_errors.run_cleanlab(noisy.rule_params(mapping, "cleanlab"), DATA, noise=0.4, seed=0, device="cpu",
                                      split_csv=str(split), scores_csv=str(out))
    saved = pd.read_csv(out)
    assert list(saved.columns) == ["index", "label", "true_label", "noisy", "score", "flagged"] and len(saved) == 110
    assert saved.score.between(0, 1).all() and saved.flagged.dtype == bool
    pd.testing.assert_frame_equal(saved, table)
    m = label_errors.run_metrics(saved, "cleanlab")
    assert m["n_noisy"] == saved.noisy.sum() and 0 <= m["auroc"] <= 1
