"""The Snakemake workflow: dry runs on the default config and rejection of bad configs."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.skipif(shutil.which("snakemake") is None and sys.modules.get("snakemake") is None,
                                reason="snakemake not installed")


def _snakemake(tmp_path, *args):
    return subprocess.run(
        [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1", *args],
        capture_output=True, text=True, timeout=300,
    )


def test_dry_run_lists_the_synthetic_dag(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("synthetic_seed", "synthetic_summary", "figure1", "all"):
        assert rule in text
    assert "results/synthetic/seed4/alpha.csv" in text


def test_dry_run_lists_the_table1_dag(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("noisy_split", "noisy_baseline", "noisy_soseleto", "noisy_finetune", "table1", "figure2",
                 "confusion_figure"):
        assert f"rule {rule}:" in text
    for noise in ("0.3", "0.4", "0.5"):
        for method in ("noisy_baseline", "soseleto", "finetune"):
            assert f"results/noisy/noise{noise}/{method}/seed2/metrics.json" in text
    assert "results/tables/table1.md" in text and "results/figures/figure2.png" in text


def test_smoke_config_plans_the_table1_dag_without_download(tmp_path):
    out = _snakemake(tmp_path, "-n", "results/tables/table1.md", "results/figures/figure2.png",
                     "--configfile", str(REPO / "config/smoke.yaml"))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "results/noisy/noise0.5/finetune/seed1/metrics.json" in text and "noise0.4" not in text


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"synthetic": {"seeds": []}}, "seeds"),  # schema: empty seed list
        ({"synthetic": {"trainer": {"lr_p": -0.1}}}, "lr_p"),  # schema: out of range
        ({"synthetic": {"trainer": {"lr_pp": 0.1}}}, "lr_pp"),  # schema: unknown key
        ({"synthetic": {"n_noisy": 600}}, "n_noisy"),  # typed config: n_noisy > n_source
        ({"noisy": {"noise_levels": [0.3, 1.2]}}, "noise_levels"),  # schema: noise level >= 1
        ({"noisy": {"methods": ["coteaching"]}}, "methods"),  # schema: unknown method
        ({"noisy": {"n_target": 5005}}, "n_target"),  # typed config: not class-balanced
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, override, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(override))
    out = _snakemake(tmp_path, "--configfile", str(cfg))
    assert out.returncode != 0
    assert needle in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_synthetic_rules_run_end_to_end(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump({"synthetic": {"seeds": [0, 1], "n_source": 100, "n_noisy": 20,
                                                 "trainer": {"epochs": 5, "source_batch": 100}}}))
    # targets first: --configfile takes every following argument as a config file
    out = _snakemake(tmp_path, "results/synthetic/summary.csv", "results/figures/figure1.png", "--configfile", str(cfg))
    assert out.returncode == 0, out.stderr[-3000:]
    summary = (tmp_path / "results/synthetic/summary.csv").read_text().splitlines()
    assert summary[0].startswith("seed,correct_at_0.1,") and len(summary) == 3
    assert (tmp_path / "results/figures/figure1.png").stat().st_size > 10_000
    assert (tmp_path / "logs/synthetic/seed1.log").read_text().count("epoch") >= 1
