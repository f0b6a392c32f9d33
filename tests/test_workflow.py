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


def test_dry_run_lists_the_transfer_dag(tmp_path):
    out = _snakemake(tmp_path, "-n", "results/tables/table2.md", "results/figures/figure5.png")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("dataset", "transfer_source_split", "transfer_target_split", "transfer_test_split", "transfer_pretrain",
                 "transfer_target_only", "transfer_fine_tuning", "transfer_soseleto", "transfer_two_stage",
                 "appendix_c_run", "table2", "appendix_c"):
        assert f"rule {rule}:" in text, rule
    for path in ("results/transfer/splits/svhn_train_01234.csv", "results/transfer/splits/svhn_train_0123456789.csv",
                 "results/transfer/splits/mnist_train_56789_nt25_seed4.csv", "results/transfer/table2/nt20/seed4/two_stage/alpha.csv",
                 "results/transfer/appendix_c/seed0/alpha.csv"):
        assert path in text, path


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


def test_dry_run_lists_the_peer_and_label_error_jobs(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("noisy_peer", "noisy_l2rw", "noisy_cleanlab", "table1_peers", "label_errors"):
        assert f"rule {rule}:" in text, rule
    for noise in ("0.3", "0.4", "0.5"):
        for method in ("joint", "l2rw", "glc", "noise_layer"):
            assert f"results/noisy/noise{noise}/{method}/seed2/metrics.json" in text
        assert f"results/noisy/noise{noise}/l2rw/seed2/scores.csv" in text
        assert f"results/noisy/noise{noise}/cleanlab/seed2/scores.csv" in text
    for path in ("results/tables/table1_peers.md", "results/tables/label_errors.csv", "results/figures/label_errors_pr.pdf"):
        assert path in text, path


def test_smoke_config_plans_the_table1_dag_without_download(tmp_path):
    out = _snakemake(tmp_path, "-n", "results/tables/table1.md", "results/figures/figure2.png",
                     "--configfile", str(REPO / "config/smoke.yaml"))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "results/noisy/noise0.5/finetune/seed1/metrics.json" in text and "noise0.4" not in text


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"transfer": {"n_target": [20, 22]}}, "n_target=22"),  # typed config: not a multiple of 5 classes
        ({"transfer": {"methods": ["soseleto", "magic"]}}, "magic"),  # schema: unknown method
        ({"transfer": {"soseleto": {"shared_classifier": True}}}, "shared_classifier"),  # typed config
        ({"synthetic": {"seeds": []}}, "seeds"),  # schema: empty seed list
        ({"synthetic": {"trainer": {"lr_p": -0.1}}}, "lr_p"),  # schema: out of range
        ({"synthetic": {"trainer": {"lr_pp": 0.1}}}, "lr_pp"),  # schema: unknown key
        ({"synthetic": {"n_noisy": 600}}, "n_noisy"),  # typed config: n_noisy > n_source
        ({"noisy": {"noise_levels": [0.3, 1.2]}}, "noise_levels"),  # schema: noise level >= 1
        ({"noisy": {"methods": ["coteaching"]}}, "methods"),  # schema: unknown method
        ({"noisy": {"n_target": 5005}}, "n_target"),  # typed config: not class-balanced
        ({"noisy": {"peers": {"noise_trace": -1}}}, "noise_trace"),  # schema: out of range
        ({"noisy": {"peers": {"glc_noisy_epoch": 2}}}, "glc_noisy_epoch"),  # schema: unknown key
        ({"noisy": {"cleanlab_folds": 1}}, "cleanlab_folds"),  # schema: one fold
        ({"noisy": {"peer_trainer": {"alpha_min": 0.5, "alpha_max": 0.2}}}, "noisy.peer_trainer.alpha_max"),  # typed
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


@pytest.mark.slow
def test_transfer_smoke_dag_runs_end_to_end(tmp_path):
    """config/smoke.yaml (generated data) through Table 2 and Appendix C, as in CI."""
    targets = ["results/tables/table2.md", "results/figures/figure3.png", "results/figures/figure4.png",
               "results/figures/figure5.png"]
    out = subprocess.run(
        [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", *targets,
         "--configfile", str(REPO / "config/smoke.yaml")],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(tmp_path / "results/tables/table2.csv")
    measured = table[table.source == "measured"]
    assert len(measured) == 2 * 4 and measured.accuracy_pct.between(0, 100).all()
    assert "not comparable" in (tmp_path / "results/tables/table2.md").read_text()
    fig3 = pd.read_csv(tmp_path / "results/tables/figure3.csv")
    assert sorted(fig3.label) == list(range(10)) and fig3.percent_good.between(0, 100).all()
    for name in ("figure3", "figure4", "figure5"):
        assert (tmp_path / f"results/figures/{name}.png").stat().st_size > 10_000
