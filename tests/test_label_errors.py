"""Label-error detection in the Table 1 setting (:mod:`soseleto.report.label_errors`): each
detector's metrics at its natural threshold, the table, its summary and the figure."""

import numpy as np
import pandas as pd
import pytest

from soseleto.report import label_errors


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
    assert (label_errors.threshold("soseleto"), label_errors.threshold("l2rw")) == (0.1, 0.5)


def _rows():
    rows = []
    for method, base in (("soseleto", 0.8), ("l2rw", 0.6)):
        for seed in range(3):
            m = {k: base + 0.01 * seed for k in ("precision", "recall", "f1", "auroc", "average_precision")}
            rows.append({"method": method, "noise": 0.3, "seed": seed, **m, "n_flagged": 10})
    return rows


def test_label_error_table_summary_and_markdown():
    df = label_errors.label_error_table(_rows())
    assert list(df.columns[:3]) == ["noise", "method", "seed"] and len(df) == 6
    s = label_errors.summarize(df)
    row = s[s.method == "l2rw"].iloc[0]
    assert row.auroc_mean == pytest.approx(0.61) and row.auroc_std == pytest.approx(0.01) and row.n_seeds == 3
    md = label_errors.mean_std_markdown(s)
    assert "| 0.3 | l2rw | 0.610 ± 0.010 |" in md and md.count("\n") == 4
    with pytest.raises(ValueError, match="auroc"):
        label_errors.label_error_table([{"method": "x", "seed": 0, "precision": 1}])


def test_markdown_of_one_seed_and_undefined_values():
    rows = [{"method": "soseleto", "seed": 0, "precision": float("nan"), "recall": 0.5, "f1": float("nan"),
             "auroc": 0.9, "average_precision": 0.7}]
    md = label_errors.mean_std_markdown(label_errors.summarize(label_errors.label_error_table(rows)))
    assert md.splitlines()[2] == "| soseleto | n/a | 0.500 | n/a | 0.900 | 0.700 | 1 |"  # no noise column, no spread


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
                bench = tmp_path / f"{noise}_{method}_{seed}.tsv"  # Snakemake's benchmark file of the job
                cpu = 50.0 * (5 if method == "cleanlab" else 1) + seed
                bench.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{cpu * 1.5}\t0:01:00\t700\t{cpu}\n")
                runs.append({"noise": noise, "method": method, "seed": seed, "path": str(path),
                             **({"benchmark": str(bench)} if noise == 0.3 else {})})
    out = tmp_path / "out"
    figures = [str(out / "pr.png"), str(out / "pr.pdf")]
    table = label_errors.write_label_errors(runs, out_csv=str(out / "le.csv"), out_md=str(out / "le.md"), figures=figures)
    saved = pd.read_csv(out / "le.csv")
    assert list(saved.columns[:8]) == ["noise", "method", "seed", "precision", "recall", "f1", "auroc", "average_precision"]
    assert len(saved) == 12 and set(saved.method) == {"soseleto", "l2rw", "cleanlab"}
    assert saved[["precision", "recall", "f1", "auroc", "average_precision"]].stack().between(0, 1).all()
    assert (saved.auroc > 0.9).all()  # the scores separate the corrupted labels
    np.testing.assert_allclose(table.auroc, saved.auroc)
    cost = saved.set_index(["noise", "method", "seed"])
    assert cost.cpu_seconds[0.3, "cleanlab", 1] == 251.0 and cost.cpu_seconds[0.3, "soseleto", 0] == 50.0
    assert cost.wall_seconds[0.3, "soseleto", 0] == 75.0
    cost = cost.wall_seconds
    assert cost[0.5].isna().all()  # no benchmark file: the cost is unknown, not zero
    assert saved.precision_at_100.between(0, 1).all() and saved.precision_at_500.isna().all()  # 200 samples
    md = (out / "le.md").read_text()
    assert "| 0.3 | cleanlab |" in md and "| 376 ± 1 | 2 |" in md
    assert md.count("\n| 0.") == 6 and "±" in md and "natural threshold" in md
    assert (out / "le.md.provenance.json").exists() and (out / "le.csv.provenance.json").exists()
    for fig in figures:
        assert (out / fig).stat().st_size > 5_000
