"""The cost plan (:mod:`soseleto.cost.plan`, :mod:`soseleto.cost.work`): its arithmetic on a tiny
config, its jobs against Snakemake's DAG, and `soseleto plan` without torch."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soseleto.cost import gpus, plan, work

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
    sizes = work.Sizes(cfg, tmp_path)
    groups = {g.rule: g for g in plan.group(w for rule, wc in work.workflow_jobs(cfg)
                                            for w in work.job_work(cfg, rule, wc, sizes))}
    # 1000 generated images, 100 clean target: 900 source
    assert groups["noisy_run_alpha (soseleto)"].steps == [3 * math.ceil(900 / 300)] * 2
    assert groups["noisy_run (noisy_baseline)"].steps == [2 * math.ceil(900 / 450)] * 2  # finetune needs it
    assert groups["noisy_run (finetune)"].steps == [5 * math.ceil(100 / 40)] * 2
    sos = groups["noisy_run_alpha (soseleto)"]
    assert sos.batch == 320 and sos.model == "cifar_quick" and sos.kind == "soseleto"


def test_transfer_set_sizes_leave_a_file_targets_test_images_out(tmp_path):
    """config/digits.yaml: mnist5k 0-4 -> 5-9 with 100 test digits per class held out of the pool and
    of Appendix C's source (0-9 of the same file); config/digits_cross.yaml: another file, all of it."""
    digits = plan.load_config([REPO / "config/digits.yaml"], base=REPO / "config/config.yaml")[0]
    sizes = work.Sizes(digits, tmp_path)
    assert sizes.transfer(25) == {"source": 2500, "target": 25, "pool": 2500 - 500 - 25}
    assert sizes.transfer(25, source_classes=tuple(range(10)))["source"] == 5000 - 500
    cross = plan.load_config([REPO / "config/digits.yaml", REPO / "config/digits_cross.yaml"],
                             base=REPO / "config/config.yaml")[0]
    sizes = work.Sizes(cross, tmp_path)
    assert sizes.transfer(20) == {"source": 901, "target": 20, "pool": 2500 - 500 - 20}
    assert sizes.transfer(25, source_classes=tuple(range(10)))["source"] == 1797


def test_hours_are_steps_times_the_scaled_step_time(tmp_path):
    bench = tmp_path / "step_cost.csv"
    bench.write_text("model,device,threads,source_batch,target_batch,plain_ms,soseleto_ms\n"
                     "lenet,cpu,2,32,10,10.0,21.0\n")
    costs = plan.step_costs("cpu", bench)
    assert (costs["lenet"]["plain"], costs["lenet"]["soseleto"]) == (10.0, 21.0)
    assert costs["lenet"]["from"].startswith("measured") and costs["cifar_quick"]["from"] == "assumed"
    group = plan.Group("noisy", "r", "soseleto", "lenet", 84, 1, True, [100, 200])  # twice the benchmark's 42 samples
    (row,) = plan.plan_rows([group], costs, "cpu")
    assert row["ms_per_step"] == 42.0 and row["hours"] == pytest.approx(300 * 42.0 / 3.6e6)
    assert row["hours_per_job"] == pytest.approx(200 * 42.0 / 3.6e6) and row["steps_per_job"] == "100-200"
    # on a GPU a smaller batch costs no less than the benchmark's step
    small = plan.Group("noisy", "r", "plain", "lenet", 8, 1, False, [10])
    assert plan.step_ms(small, plan.step_costs("cuda"), "cuda")[0] == plan.ASSUMED_MS["cuda"]["lenet"][0]
    assert plan.step_ms(small, costs, "cpu")[0] == pytest.approx(10.0 * 8 / 32)
    # a step the benchmark did not time: priced as a SOSELETO step if it looks ahead, else as a plain one
    ahead = plan.Group("noisy", "r", "l2rw", "lenet", 42, 1, True, [10])
    assert plan.step_ms(ahead, costs, "cpu") == (21.0, costs["lenet"]["from"] + ", as a soseleto step")
    bench.write_text("model,device,threads,source_batch,target_batch,plain_ms,soseleto_ms,l2rw_ms\n"
                     "lenet,cpu,2,32,10,10.0,21.0,30.0\n")
    assert plan.step_ms(ahead, plan.step_costs("cpu", bench), "cpu")[0] == 30.0


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


def test_a_plan_of_given_jobs_prices_only_those():
    cfg, _ = plan.load_config([REPO / "config/smoke.yaml"], base=REPO / "config/config.yaml")
    pending = [("noisy_run_alpha", {"noise": "0.5", "method": "soseleto", "seed": "0"}),
               ("noisy_run", {"noise": "0.5", "method": "glc", "seed": "0"}),
               ("noisy_run", {"noise": "0.5", "method": "glc", "seed": "1"})]
    result = plan.plan(cfg, device="cpu", cores=2, jobs=pending)
    assert [(r["rule"], r["jobs"]) for r in result["rows"]] == [("noisy_run_alpha (soseleto)", 1),
                                                               ("noisy_run (glc)", 2)]
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
    for rule, _ in work.workflow_jobs(cfg):
        counts[rule] = counts.get(rule, 0) + 1
    assert counts == {k: int(v) for k, v in stats.items() if k not in ("all", "total")}


def test_plan_command_prints_the_table_without_torch():
    code = ("import sys\nfrom soseleto.cli import main\n"
            "assert main(['plan', '--configfile', 'config/digits.yaml', '--device', 'cpu', '--cores', '2']) == 0\n"
            "assert 'torch' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "| noisy | noisy_run_alpha (soseleto) | 9 |" in out.stdout and "**Total:**" in out.stdout


def test_auto_device_is_priced_as_cpu_without_a_visible_gpu(tmp_path, monkeypatch):
    cfg = _config(tmp_path, device="auto")
    monkeypatch.setattr(gpus, "gpu_visible", lambda: False)
    assert gpus.default_device(cfg.device) == "cpu"
    monkeypatch.setattr(gpus, "gpu_visible", lambda: True)
    assert gpus.default_device(cfg.device) == "cuda"
    assert gpus.default_device(_config(tmp_path, device="cpu").device) == "cpu"
    monkeypatch.undo()
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert gpus.gpu_visible() is False


def test_gpu_slots_spread_over_the_visible_cards(tmp_path, monkeypatch):
    for card in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:04:00.0"):
        (tmp_path / card).mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.gpu_count(tmp_path) == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert gpus.gpu_count(tmp_path) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpus.gpu_count(tmp_path) == 0
    monkeypatch.setattr(gpus, "gpu_count", lambda: 4)
    assert gpus.gpu_layout(16) == {"gpus": 4, "jobs_per_gpu": 4}
    assert gpus.gpu_layout(6) == {"gpus": 4, "jobs_per_gpu": 2}
    assert gpus.gpu_layout(None) == {"gpus": 4, "jobs_per_gpu": 1}
    monkeypatch.setattr(gpus, "gpu_count", lambda: 0)  # a CPU machine: the plan prices the CPU anyway
    assert gpus.gpu_layout(1) == {"gpus": 1, "jobs_per_gpu": 1}


def test_the_plans_benchmark_batches_are_the_benchmarks():
    from soseleto.cost import bench  # the plan cannot import it (torch): its copy of the batches must agree

    for model, s in bench.SETTINGS.items():
        assert work.BENCH_BATCH[model] == (s.source_batch, s.target_batch), model
