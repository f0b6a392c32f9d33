"""The cost plan (:mod:`soseleto.report.plan`): its arithmetic on a tiny config, its job counts
against Snakemake's DAG, and `soseleto plan` without torch."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soseleto.report import plan

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path, **override):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(override))
    return plan.load_config([path], base=REPO / "config/config.yaml")[0]


def test_steps_follow_set_sizes_batches_and_epochs(tmp_path):
    cfg = _config(tmp_path, device="cpu", data={"source": "generated", "generated_train": 1000},
                  noisy={"seeds": [0, 1], "noise_levels": [0.5], "methods": ["soseleto", "finetune"],
                         "split": {"n_target": 100},
                         "trainer": {"source_batch": 300, "target_batch": 20, "epochs": 3},
                         "baseline": {"batch": 450, "epochs": 2}, "finetune": {"batch": 40, "epochs": 5},
                         "cleanlab_folds": 0})
    works = {w.rule: w for w in plan.noisy_work(cfg, results=tmp_path)}
    # 1000 generated images, 100 clean target: 900 source
    assert works["noisy_soseleto"].steps == [3 * math.ceil(900 / 300)] * 2
    assert works["noisy_baseline"].steps == [2 * math.ceil(900 / 450)] * 2  # finetune needs it
    assert works["noisy_finetune"].steps == [5 * math.ceil(100 / 40)] * 2
    assert works["noisy_soseleto"].batch == 320 and works["noisy_soseleto"].model == "cifar_quick"


def test_hours_are_steps_times_the_scaled_step_time(tmp_path):
    bench = tmp_path / "step_cost.csv"
    bench.write_text("model,device,threads,source_batch,target_batch,plain_ms,soseleto_ms\n"
                     "lenet,cpu,2,32,10,10.0,21.0\n")
    costs = plan.step_costs("cpu", bench)
    assert costs["lenet"][:2] == (10.0, 21.0) and costs["lenet"][2].startswith("measured")
    assert costs["cifar_quick"][2] == "assumed"
    work = plan.Work("noisy", "r", [100, 200], "soseleto", "lenet", 84)  # twice the benchmark's 42 samples
    (row,) = plan.plan_rows([work], costs, "cpu")
    assert row["ms_per_step"] == 42.0 and row["hours"] == pytest.approx(300 * 42.0 / 3.6e6)
    assert row["hours_per_job"] == pytest.approx(200 * 42.0 / 3.6e6) and row["steps_per_job"] == "100-200"
    # on a GPU a smaller batch costs no less than the benchmark's step
    small = plan.Work("noisy", "r", [10], "plain", "lenet", 8)
    assert plan.step_ms(small, plan.step_costs("cuda"), "cuda")[0] == plan.ASSUMED_MS["cuda"]["lenet"][0]
    assert plan.step_ms(small, costs, "cpu")[0] == pytest.approx(10.0 * 8 / 32)


def test_wall_time_shares_the_cores_and_is_never_below_the_longest_job():
    rows = [{"hours": 8.0, "hours_per_job": 1.0, "threads": 2, "model": "lenet", "kind": "soseleto", "jobs": 8},
            {"hours": 0.5, "hours_per_job": 0.5, "threads": 1, "model": "-", "kind": "none", "jobs": 1}]
    assert plan.wall_hours(rows, "cpu", cores=4) == pytest.approx(8.0 / 2 + 0.5 / 4)
    assert plan.wall_hours(rows, "cuda", cores=4, gpus=2) == pytest.approx(4.0)
    assert plan.wall_hours(rows[:1], "cpu", cores=64) == 1.0
    # four jobs per card that together do 3.2x the work of one: 8 h / 3.2 / 2 cards; each job 1.25x longer
    gains = {("lenet", "soseleto"): (3.2, "measured")}
    assert plan.wall_hours(rows, "cuda", cores=4, gpus=2, jobs_per_gpu=4, gains=gains) == pytest.approx(1.25)
    assert plan.wall_hours(rows, "cuda", cores=4, gpus=16, jobs_per_gpu=4, gains=gains) == pytest.approx(1.25)
    # not measured: sharing the card gains nothing, and each job takes jobs_per_gpu times as long
    assert plan.wall_hours(rows, "cuda", cores=4, gpus=2, jobs_per_gpu=4) == pytest.approx(4.0)


def test_sharing_gains_come_from_the_measured_level_not_above_the_jobs_per_gpu(tmp_path):
    share = tmp_path / "share_cost.csv"
    share.write_text("model,kind,device,jobs,speedup\n"
                     "lenet,soseleto,cuda:0,1,1.0\nlenet,soseleto,cuda:0,4,3.5\nlenet,soseleto,cuda:0,8,5.0\n"
                     "lenet,soseleto,cpu,4,2.0\ncifar_quick,soseleto,cuda:0,8,4.0\n")
    assert plan.share_gains("cuda", 6, share)[("lenet", "soseleto")][0] == 3.5
    assert plan.share_gains("cuda", 8, share)[("lenet", "soseleto")] == (5.0, "measured (share_cost.csv, 8 jobs)")
    assert plan.share_gains("cuda", 1, share) == {} and plan.share_gains("cpu", 4, share) == {}
    cfg, _ = plan.load_config(base=REPO / "config/config.yaml")
    one = plan.plan(cfg, device="cuda", cores=2, results=tmp_path)
    shared = plan.plan(cfg, device="cuda", cores=2, jobs_per_gpu=8, share_csv=share, results=tmp_path)
    assert shared["hours"] == one["hours"] and shared["wall_hours"] < one["wall_hours"]
    assert "8 training jobs side by side per GPU" in plan.render_markdown(shared)
    assert "measured (share_cost.csv, 8 jobs)" in shared["share_from"]
    assert "assumed: no gain" in plan.render_markdown(plan.plan(cfg, device="cuda", cores=2, jobs_per_gpu=8,
                                                                results=tmp_path))


def test_pending_keeps_only_the_jobs_left_to_run():
    cfg, _ = plan.load_config([REPO / "config/smoke.yaml"], base=REPO / "config/config.yaml")
    result = plan.plan(cfg, device="cpu", cores=2, pending={"noisy_soseleto": 1, "noisy_peer (glc)": 2})
    assert [(r["rule"], r["jobs"]) for r in result["rows"]] == [("noisy_soseleto", 1), ("noisy_peer (glc)", 2)]
    assert result["jobs"] == 3 and result["training_jobs"] == 3


@pytest.mark.parametrize("configfile", [None, "config/smoke.yaml"])
def test_job_counts_match_the_snakemake_dag(tmp_path, configfile):
    extra = ["--configfile", str(REPO / configfile)] if configfile else []
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n",
                          "--cores", "1", *extra], capture_output=True, text=True, check=False, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout.split("Job stats:")[1].split("\n\n")[0], flags=re.MULTILINE))
    cfg, _ = plan.load_config([REPO / configfile] if configfile else [], base=REPO / "config/config.yaml")
    counts: dict[str, int] = {}
    for w in plan.workflow_work(cfg, results=tmp_path):
        rule = w.rule.split(" (")[0]
        counts[rule] = 1 if w.kind == "bench" else counts.get(rule, 0) + len(w.steps)
    expected = {k: int(v) for k, v in stats.items() if k not in ("all", "total", "cost_plan")}
    assert counts == expected


def test_plan_command_prints_the_table_without_torch():
    code = ("import sys\nfrom soseleto.cli import main\n"
            "assert main(['plan', '--configfile', 'config/digits.yaml', '--device', 'cpu', '--cores', '2']) == 0\n"
            "assert 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "| noisy | noisy_soseleto | 9 |" in out.stdout and "**Total:**" in out.stdout


def test_auto_device_is_priced_as_cpu_without_a_visible_gpu(tmp_path, monkeypatch):
    cfg = _config(tmp_path, device="auto")
    monkeypatch.setattr(plan, "gpu_visible", lambda: False)
    assert plan.default_device(cfg) == "cpu"
    monkeypatch.setattr(plan, "gpu_visible", lambda: True)
    assert plan.default_device(cfg) == "cuda"
    assert plan.default_device(_config(tmp_path, device="cpu")) == "cpu"
    monkeypatch.undo()
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert plan.gpu_visible() is False


def test_gpu_slots_spread_over_the_visible_cards(tmp_path, monkeypatch):
    for card in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0"):
        (tmp_path / card).mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert plan.gpu_count(tmp_path) == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert plan.gpu_count(tmp_path) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert plan.gpu_count(tmp_path) == 0
    monkeypatch.setattr(plan, "gpu_count", lambda: 4)
    assert plan.gpu_layout(16) == {"gpus": 4, "jobs_per_gpu": 4}
    assert plan.gpu_layout(6) == {"gpus": 4, "jobs_per_gpu": 2}
    assert plan.gpu_layout(None) == {"gpus": 4, "jobs_per_gpu": 1}
    monkeypatch.setattr(plan, "gpu_count", lambda: 0)  # a CPU machine: the plan prices the CPU anyway
    assert plan.gpu_layout(1) == {"gpus": 1, "jobs_per_gpu": 1}


def test_the_plans_benchmark_batches_are_the_benchmarks():
    from soseleto import bench  # the plan cannot import it (torch): its copy of the batches must agree

    for model, s in bench.SETTINGS.items():
        assert plan.BENCH_BATCH[model] == (s.source_batch, s.target_batch), model
