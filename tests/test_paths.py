"""Names in result paths and the workflow's run lists (:mod:`soseleto.paths`)."""

from pathlib import Path

import numpy as np

from soseleto import paths
from soseleto.config import BenchConfig, DataConfig, SideConfig
from soseleto.cost import plan

REPO = Path(__file__).resolve().parents[1]

RUN = "results/noisy/noise{noise}/{method}/seed{seed}"


def test_detection_runs_follow_the_methods():
    runs = paths.detection_runs(["noisy_baseline", "soseleto", "l2rw", "glc"], ["0.3", "0.5"], [0, 1], run=RUN)
    assert len(runs) == 2 * 3 * 2
    assert runs[0] == {"noise": 0.3, "method": "soseleto", "seed": 0, "path": "results/noisy/noise0.3/soseleto/seed0/alpha.csv"}
    assert {r["method"] for r in runs} == {"soseleto", "l2rw", "cleanlab"}
    assert runs[-1]["path"] == "results/noisy/noise0.5/cleanlab/seed1/scores.csv"
    # cleanlab belongs to the noisy baseline; no scoring method, no runs
    assert {r["method"] for r in paths.detection_runs(["soseleto"], ["0.3"], [0], run=RUN)} == {"soseleto"}
    assert paths.detection_runs(["finetune", "glc"], ["0.3"], [0], run=RUN) == []


def test_classes_tag():
    assert paths.classes_tag([0, 1, 2, 3, 4]) == "01234" and paths.classes_tag(np.arange(10)) == "0123456789"
    assert paths.classes_tag((10, 11)) == "10.11" and paths.classes_tag((9, 12)) == "9.12"


def test_dataset_transfer_and_noise_tags():
    real = DataConfig()
    assert paths.dataset_tag("CIFAR10", real) == "cifar10" and paths.dataset_tag("data/mnist5k.npz", real) == "mnist5k"
    assert paths.dataset_tag("/data/my_images/", real) == "my_images"
    assert paths.dataset_tag("d/odd+set(1)$x{v}.npz", real) == "odd+set(1)$x(v)"  # braces would open a wildcard
    assert paths.transfer_tag(SideConfig("svhn", (0, 1, 2, 3, 4)), SideConfig("data/m.npz", (5, 6)), real) == \
        "svhn_01234-to-m_56"


def test_generated_stand_ins_are_named_apart_from_the_real_sets():
    generated = DataConfig(source="generated")
    assert paths.dataset_tag("cifar10", generated) == "cifar10-generated"
    assert paths.dataset_tag("cifar10", None) == "cifar10"  # the real set's name, for captions
    assert paths.dataset_tag("data/m.npz", generated) == "m"  # a file is never replaced
    assert paths.manifest("svhn", generated) == "results/data/svhn-generated.json" != paths.manifest("svhn", DataConfig())
    assert paths.transfer_tag(SideConfig("svhn", (0, 1)), SideConfig("mnist", (5, 6)), generated) == \
        "svhn-generated_01-to-mnist-generated_56"


def _config(*files):
    return plan.load_config([REPO / f for f in files], base=REPO / "config/config.yaml")[0]


def test_the_cost_plan_and_the_benchmarks_name_what_they_planned_and_measured():
    paper, smoke, digits = _config(), _config("config/smoke.yaml"), _config("config/digits.yaml")
    assert [paths.config_tag(c) for c in (paper, smoke, digits)] == [
        "cifar10+svhn+mnist", "cifar10-generated+svhn-generated+mnist-generated", "mnist5k"]
    assert paths.cost_plan(digits, ".md") == "results/benchmarks/cost_plan-mnist5k.md"
    assert paths.step_cost_csv("cuda:1", paper.bench) == "results/benchmarks/step_cost-cuda.csv"
    assert paths.step_cost_csv("cpu", smoke.bench) == "results/benchmarks/step_cost-cpu-quick-2threads.csv"
    other = BenchConfig(reps=50, load=0, models=("lenet",))
    assert paths.bench_tag("cpu", other) == "cpu-reps50-load0-lenet"
    assert paths.share_cost_csv("cuda:0") == "results/benchmarks/share_cost-cuda.csv"
    # the plan reads the benchmark its config's bench section writes on the device, never another's
    assert plan.benchmarks(paper, "cpu") == ("results/benchmarks/step_cost-cpu.csv",
                                             "results/benchmarks/share_cost-cpu.csv")
    assert plan.benchmarks(smoke, "cpu")[0] == paths.step_cost_csv("cpu", smoke.bench)
    assert [paths.noise_tag(n) for n in (0.3, 0.40, 0.5, 1e-3)] == ["0.3", "0.4", "0.5", "0.001"]


def test_where_results_lists_tables_figures_and_the_report_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/tables/mnist5k").mkdir(parents=True)
    for name in ("table1.md", "table1.csv", "curves.png"):
        (tmp_path / "results/tables/mnist5k" / name).write_text("x")
    text = paths.where_results(["results/tables/mnist5k", "results/figures/missing"], ["config/digits.yaml"])
    assert "results/tables/mnist5k/: curves.png, table1.md" in text and "missing" not in text
    assert text.rstrip().endswith("report: snakemake --report results/report.html --configfile config/digits.yaml")
