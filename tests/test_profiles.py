"""Snakemake profiles, lint and report: what `snakemake --profile ...` and `--report` rely on."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "workflow/profiles"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None, reason="snakemake not installed")
needs_slurm_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')",
)


def _snakemake(cwd, *args, timeout=300):
    return subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=timeout)


def _long_options():
    from snakemake.cli import get_argument_parser

    return {s[2:] for action in get_argument_parser()._actions for s in action.option_strings if s.startswith("--")}


@pytest.mark.parametrize("name", ["default", "slurm"])
def test_profile_is_a_mapping_of_snakemake_options(name):
    profile = yaml.safe_load((PROFILES / name / "config.yaml").read_text())
    assert isinstance(profile, dict) and profile
    unknown = set(profile) - _long_options()
    assert not unknown, f"{name}: not snakemake options: {unknown}"


def test_default_profile_dry_run_limits_the_gpu(tmp_path):
    out = _snakemake(tmp_path, "--profile", str(PROFILES / "default"), "-n")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "Using profile" in text and "synthetic_seed" in text
    assert "gpu=1" in text  # training rules declare the card they use


def test_device_cpu_declares_no_gpu(tmp_path):
    out = _snakemake(tmp_path, "--profile", str(PROFILES / "default"), "-n", "--config", "device=cpu")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "synthetic_seed" in out.stdout and "gpu=1" not in out.stdout


@needs_slurm_plugin
def test_slurm_profile_dry_run(tmp_path):
    # A dry run builds every job's resources and the executor settings but submits nothing, so it
    # needs no sbatch.
    out = _snakemake(tmp_path, "--profile", str(PROFILES / "slurm"), "-n")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "gpu=1" in text and "runtime=60" in text
    assert "slurm_extra=--signal=TERM@300" in text  # SIGTERM before the time limit: the job saves its state


def test_slurm_profile_asks_for_each_rules_threads_and_retries():
    """No fixed cpus_per_task: the plugin then requests each rule's threads; retries resume a job
    that the time limit stopped."""
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    resources = " ".join(profile["default-resources"])
    assert "cpus_per_task" not in resources and "--signal=TERM@" in resources
    assert profile["retries"] >= 1 and profile["rerun-incomplete"] is True


def test_lint_is_clean():
    out = subprocess.run([*SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations" in out.stdout + out.stderr or not (out.stdout + out.stderr).strip()


@pytest.mark.slow
def test_report_collects_the_synthetic_results_with_captions(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump({"device": "cpu", "synthetic": {
        "seeds": [0, 1], "n_source": 60, "n_noisy": 10, "n_target": 20,
        "trainer": {"epochs": 3, "source_batch": 60, "target_batch": 20}}}))
    targets = ["results/synthetic/summary.csv", "results/figures/figure1.png"]
    run = _snakemake(tmp_path, "--cores", "2", *targets, "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    # a report restricted to the targets that ran (the full DAG's other results don't exist here)
    out = _snakemake(tmp_path, "--cores", "1", *targets, "--report", "results/report.html", "--configfile", str(cfg))
    assert out.returncode == 0, out.stderr[-3000:]
    html = (tmp_path / "results/report.html").read_text()
    assert "Section 4.1, synthetic noisy labels" in html
    assert "figure1.png" in html and "summary.csv" in html
    assert "PNG metadata" in html  # the caption points to the figure's own provenance
    assert (tmp_path / "results/report.html").stat().st_size > 100_000
