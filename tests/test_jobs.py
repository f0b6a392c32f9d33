"""The workflow's job functions (:mod:`soseleto.jobs`), run without Snakemake."""

import json
import logging
import sys

import pandas as pd
import pytest
import torch

from soseleto import jobs
from soseleto.config import DataConfig, SyntheticConfig, WorkflowConfig, job_params

from builders import soseleto_config


@pytest.fixture(autouse=True)
def restore_process_state():
    """run_job sets torch's thread count, the root log handlers and (with a log file) sys.excepthook."""
    threads, handlers, level, hook = torch.get_num_threads(), logging.getLogger().handlers[:], \
        logging.getLogger().level, sys.excepthook
    yield
    torch.set_num_threads(threads)
    for h in logging.getLogger().handlers:
        if h not in handlers:
            h.close()
    logging.getLogger().handlers[:] = handlers
    logging.getLogger().setLevel(level)
    sys.excepthook = hook


CFG = WorkflowConfig(
    data=DataConfig(source="generated", dir="unused", generated_train=30, generated_test=20),
    synthetic=SyntheticConfig(seeds=(0,), n_source=40, n_noisy=5, n_target=8,
                              trainer=soseleto_config(epochs=2, source_batch=40, target_batch=8, lr_p=0.1)))


def test_unknown_rule_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"rule 'bogus' has no job function; known: \["):
        jobs.run_job(jobs.Job("bogus", log=str(tmp_path / "job.log")))


def test_every_job_function_is_callable():
    assert all(callable(f) for f in jobs.JOBS.values()) and "synthetic_seed" in jobs.JOBS


def test_dataset_job_writes_the_manifest_and_logs_to_its_file(tmp_path):
    job = jobs.Job("dataset", output={"manifest": str(tmp_path / "m.json")},
                   params={"dataset": "mnist", "config": job_params(CFG, "data")}, log=str(tmp_path / "d.log"), threads=2)
    jobs.run_job(job)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["train"]["n"] == 30 and m["test"]["n"] == 20 and m["provenance"]["config"]["data"]["source"] == "generated"
    assert torch.get_num_threads() == 2  # the cores Snakemake granted


def test_synthetic_jobs_read_their_config_entry(tmp_path):
    out = {k: str(tmp_path / f"{k}.out") for k in ("points", "history", "metrics")}
    job = jobs.Job("synthetic_seed", output=out, params={"config": job_params(CFG, "synthetic"), "device": "cpu"},
                   wildcards={"seed": "3"}, log=str(tmp_path / "s.log"))
    jobs.run_job(job)
    assert len(pd.read_csv(out["points"])) == 40 and pd.read_csv(out["history"]).epoch.max() == 2
    assert json.loads((tmp_path / "metrics.out").read_text())["summary"]["seed"] == 3
    assert "synthetic: epoch 2/2" in (tmp_path / "s.log").read_text()
    summary = jobs.Job("synthetic_summary", input={"metrics": [out["metrics"]]}, output={"csv": str(tmp_path / "s.csv")})
    jobs.run_job(summary)
    assert pd.read_csv(tmp_path / "s.csv").seed.tolist() == [3]
    with pytest.raises(ValueError, match="job params lack the config entry 'synthetic'"):
        jobs.run_job(jobs.Job("synthetic_seed", output=out, params={"config": {}, "device": "cpu"},
                              wildcards={"seed": "3"}))


def test_a_job_on_auto_takes_the_card_spread_gives_it(tmp_path, monkeypatch):
    from soseleto.cost import gpus as device

    seen = []
    monkeypatch.setattr(device, "spread", lambda d: seen.append(d) or "cuda:3")  # a several-card machine
    monkeypatch.setitem(jobs.JOBS, "probe", lambda job: seen.append(job.params["device"]))
    jobs.run_job(jobs.Job("probe", params={"device": "auto"}, log=str(tmp_path / "p.log")))
    assert seen == ["auto", "cuda:3"]


def test_gpu_slots_are_read_from_snakemakes_resources(tmp_path):
    import subprocess

    (tmp_path / "Snakefile").write_text(
        "from soseleto.jobs import gpu_slots\n"
        "onstart:\n    print('GPU_SLOTS', gpu_slots(workflow))\n"
        "rule all:\n    output: 'x.txt'\n    shell: 'touch {output}'\n")
    for extra, expected in ((["--resources", "gpu=8"], "8"), ([], "None")):
        (tmp_path / "x.txt").unlink(missing_ok=True)
        out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-q", *extra], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, check=True)
        assert f"GPU_SLOTS {expected}" in out.stdout + out.stderr


def test_share_cost_job_times_the_configured_counts_into_its_log(tmp_path, monkeypatch):
    from soseleto.cost import share
    from soseleto.config import BenchConfig

    seen = {}

    def fake_measure(models, **kw):
        seen.update(models=models, **kw)
        logging.getLogger("soseleto.cost.share").info("timed")
        return pd.DataFrame({"model": models, "jobs": [1]})

    monkeypatch.setattr(share, "measure", fake_measure)
    cfg = WorkflowConfig(bench=BenchConfig(models=("lenet",), share_jobs=(1, 8), share_seconds=2.5))
    params = {"config": job_params(cfg, "bench.models", "bench.share_jobs", "bench.share_seconds"), "device": "cpu"}
    jobs.run_job(jobs.Job("share_cost", output={"csv": str(tmp_path / "share_cost.csv")}, params=params,
                          log=str(tmp_path / "share.log")))
    assert list(seen["models"]) == ["lenet"] and list(seen["jobs"]) == [1, 8] and seen["seconds"] == 2.5
    assert seen["device"] == "cpu" and (tmp_path / "share_cost.csv").exists()
    assert "timed" in (tmp_path / "share.log").read_text()  # the job's log file is kept, not replaced
