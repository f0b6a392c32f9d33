"""The Snakemake workflow: dry runs on the default config and rejection of bad configs."""

import itertools
import os
import re
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
        capture_output=True, text=True, check=False, timeout=300,
    )


TR = "results/transfer/svhn_01234-to-mnist_56789"
AC = "results/transfer/svhn_0123456789-to-mnist_56789/appendix_c"


def test_dry_run_lists_the_synthetic_dag(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("synthetic_seed", "synthetic_summary", "figure1", "all"):
        assert rule in text
    assert "results/synthetic/seed4/alpha.csv" in text


def test_dry_run_lists_the_transfer_dag(tmp_path):
    out = _snakemake(tmp_path, "-n", "results/tables/svhn_01234-to-mnist_56789/table2.md",
                     "results/figures/svhn_0123456789-to-mnist_56789/figure5.png")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("dataset", "transfer_source_split", "appendix_c_source_split", "transfer_target_split",
                 "transfer_pretrain", "transfer_run", "transfer_run_alpha", "appendix_c_run", "table2", "appendix_c"):
        assert f"rule {rule}:" in text, rule
    for method in ("target_only", "fine_tuning", "soseleto", "two_stage"):
        assert f"{TR}/nt25/seed4/{method}/metrics.json" in text, method
    for path in (f"{TR}/splits/source.csv", f"{AC}/source.csv", f"{TR}/splits/target_nt25_seed4.csv",
                 f"{TR}/splits/test_nt25_seed4.csv", f"{TR}/nt20/seed4/two_stage/alpha.csv", f"{AC}/seed0/alpha.csv"):
        assert path in text, path


def test_dry_run_lists_the_table1_dag(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("noisy_split", "noisy_run", "noisy_run_alpha", "table1", "figure2", "confusion_figure"):
        assert f"rule {rule}:" in text
    for noise in ("0.3", "0.4", "0.5"):
        for method in ("noisy_baseline", "soseleto", "finetune"):
            assert f"results/noisy/cifar10/noise{noise}/{method}/seed2/metrics.json" in text
    assert "results/tables/cifar10/table1.md" in text and "results/figures/cifar10/figure2.png" in text


def test_dry_run_lists_the_peer_and_label_error_jobs(tmp_path):
    out = _snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for rule in ("noisy_run", "noisy_run_scores", "noisy_cleanlab", "table1_peers", "label_errors"):
        assert f"rule {rule}:" in text, rule
    for noise in ("0.3", "0.4", "0.5"):
        run = f"results/noisy/cifar10/noise{noise}"
        for method in ("joint", "l2rw", "glc", "noise_layer"):
            assert f"{run}/{method}/seed2/metrics.json" in text
        assert f"{run}/l2rw/seed2/scores.csv" in text and f"{run}/cleanlab/seed2/scores.csv" in text
    for path in ("results/tables/cifar10/table1_peers.md", "results/tables/cifar10/label_errors.csv",
                 "results/figures/cifar10/label_errors_pr.pdf"):
        assert path in text, path


def test_smoke_config_plans_the_table1_dag_without_download(tmp_path):
    out = _snakemake(tmp_path, "-n", "results/tables/cifar10-generated/table1.md",
                     "results/figures/cifar10-generated/figure2.png", "--configfile", str(REPO / "config/smoke.yaml"))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "results/noisy/cifar10-generated/noise0.5/finetune/seed1/metrics.json" in text and "noise0.4" not in text
    assert "results/data/cifar10-generated.json" in text and "results/noisy/cifar10/" not in text


def _outputs(tmp_path, *configfiles):
    """Every output file of `snakemake all` under config/config.yaml updated by ``configfiles``."""
    out = _snakemake(tmp_path, "--summary", *(("--configfile", *map(str, configfiles)) if configfiles else ()))
    assert out.returncode == 0, out.stderr[-3000:]
    return {line.split("\t")[0] for line in out.stdout.splitlines() if line.startswith("results/")}


def test_configs_share_no_output_but_the_same_computation(tmp_path):
    """The paper, the smoke test, the real digits and a small variant of the smoke test on other sets
    write distinct files into one results folder: a failed job of one config (whose outputs
    Snakemake deletes) never removes another's. They share a file only where they compute the same
    thing: the synthetic experiment (the same settings in every config), a data set's manifest and
    a step-cost benchmark of the same bench section."""
    smoke = REPO / "config/smoke.yaml"
    runs = {"paper": _outputs(tmp_path), "smoke": _outputs(tmp_path, smoke),
            "digits": _outputs(tmp_path, REPO / "config/digits.yaml"),
            "smoke-fashionmnist": _outputs(tmp_path, smoke, REPO / "config/fashionmnist.yaml")}
    assert "results/benchmarks/cost_plan-cifar10-generated+svhn-generated+mnist-generated.md" in runs["smoke"]
    assert "results/tables/cifar10-generated/table1.md" in runs["smoke"]
    assert "results/tables/cifar10/table1.md" in runs["paper"]
    assert {"results/tables/mnist5k/table1.md", "results/benchmarks/cost_plan-mnist5k.csv"} <= runs["digits"]
    quick = "results/benchmarks/step_cost-cpu-quick-2threads.csv"  # config/smoke.yaml's and digits.yaml's bench section
    same = ("results/synthetic/", "results/figures/figure1.", "results/data/", quick)
    for a, b in itertools.combinations(runs, 2):
        shared = sorted(p for p in runs[a] & runs[b] if not p.startswith(same))
        assert shared == [], (a, b, shared[:5])


def test_the_cross_domain_digits_config_writes_its_transfer_results_under_its_own_names(tmp_path):
    """config/digits_cross.yaml on top of config/digits.yaml: digits8x8 -> mnist5k, Table 2 and
    Appendix C in their own folders, none of them a file of the same-domain task."""
    digits = _outputs(tmp_path, REPO / "config/digits.yaml")
    cross = _outputs(tmp_path, REPO / "config/digits.yaml", REPO / "config/digits_cross.yaml")
    transfer = {p for p in cross if "-to-" in p}
    assert {"results/tables/digits8x8_01234-to-mnist5k_56789/table2.md",
            "results/tables/digits8x8_01234-to-mnist5k_56789/appendix_c.csv",
            "results/figures/digits8x8_0123456789-to-mnist5k_56789/figure3.png",
            "results/transfer/digits8x8_01234-to-mnist5k_56789/nt20/seed2/two_stage/metrics.json"} <= transfer
    assert not transfer & digits and all("digits8x8_" in p for p in transfer)
    assert "results/transfer/mnist5k_01234-to-mnist5k_56789/nt25/seed2/two_stage/metrics.json" in digits


def test_the_report_of_a_config_not_run_yet_warns_of_no_missing_metadata(tmp_path):
    """`snakemake --report` of a config whose results are not made yet (here: none) reports what
    exists, says what it leaves out, and neither warns of missing metadata nor stops."""
    out = _snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Missing metadata" not in out.stderr and "leaves out" in out.stderr
    assert (tmp_path / "report.html").stat().st_size > 10_000


@pytest.mark.parametrize("generated", [False, True])
def test_captions_name_the_data_their_result_was_made_from(generated):
    """A caption says "generated stand-ins" only for a result made from them, the real set's name
    otherwise (the data tag of the result's own path)."""
    import jinja2

    sets = ("cifar10-generated", "svhn-generated_01234-to-mnist-generated_56789") if generated else (
        "mnist5k", "svhn_01234-to-mnist_56789")
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake renders them
    captions = [p for p in (REPO / "workflow/report").glob("*.rst") if "{% set " in p.read_text()]
    assert len(captions) >= 12
    for path in captions:
        tag = sets[1] if "{% set task" in path.read_text() else sets[0]
        text = env.from_string(path.read_text()).render(snakemake={"output": [f"results/tables/{tag}/x.csv"]})
        assert ("generated stand-ins" in text) == generated, path.name
        assert (("svhn_01234-to-mnist_56789" if tag == sets[1] else "cifar10") if generated else tag) in text


def test_the_dag_is_built_without_torch(tmp_path):
    """Parsing the workflow (snakemake -n) imports only torch-free modules of the package."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith(('torch.', 'torchvision')):\n"
        "            raise ImportError(f'{name} must not be imported to build the DAG')\n"
        "sys.meta_path.insert(0, _NoTorch())\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True, check=False)
    assert probe.returncode != 0 and "must not be imported" in probe.stderr  # the blocker works
    for extra in ((), ("--configfile", str(REPO / "config/smoke.yaml")), ("--configfile", str(REPO / "config/smoke.yaml"))):
        out = subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
                              "--cores", "1", *extra], capture_output=True, text=True, check=False, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-3000:]


def test_scripts_are_thin_and_import_the_installed_package():
    scripts = sorted((REPO / "workflow/scripts").glob("*.py"))
    assert [p.name for p in scripts] == ["job.py"]
    for path in [*scripts, *(REPO / "workflow/rules").glob("*.smk"), REPO / "Snakefile"]:
        text = path.read_text()
        assert "sys.path" not in text, path
    assert (REPO / "workflow/scripts/job.py").read_text().count("noqa") == 1


def test_every_rule_has_a_job_function():
    from soseleto.jobs import JOBS

    rules = set()
    for path in [REPO / "Snakefile", *(REPO / "workflow/rules").glob("*.smk")]:
        rules |= set(re.findall(r"^(?:rule|use rule \w+ as) (\w+)", path.read_text(), flags=re.MULTILINE))
    aggregates = {r for r in rules if r == "all" or r.endswith("_all")}
    # cost_plan runs in Snakemake's own process (torch-free, from the typed config): no job script
    assert rules - aggregates - {"cost_plan"} == set(JOBS)


def test_schema_file_is_generated_from_the_dataclasses():
    from soseleto.config import schema_yaml

    assert (REPO / "workflow/schemas/config.schema.yaml").read_text() == schema_yaml(), \
        "regenerate: python -m soseleto.config > workflow/schemas/config.schema.yaml"


def test_snakefmt_is_clean():
    if shutil.which("snakefmt") is None:
        pytest.skip("snakefmt not installed")
    out = subprocess.run(["snakefmt", "--check", str(REPO / "Snakefile"), str(REPO / "workflow")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


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
        ({"noisy": {"peers": {"noise_trace": -1}}}, "noise_trace"),  # schema: out of range
        ({"noisy": {"peers": {"glc_noisy_epoch": 2}}}, "glc_noisy_epoch"),  # schema: unknown key
        ({"noisy": {"cleanlab_folds": 1}}, "cleanlab_folds"),  # typed config: one fold
        ({"noisy": {"baseline": {"lr_alpha": 1.0}}}, "lr_alpha"),  # plain training has no alpha
        ({"noisy": {"split": {"dataset": "digits.npz"}}}, "test_per_class"),  # typed: a file has no test split
        ({"transfer": {"target": {"dataset": "digits.npz"}}}, "two_stage"),  # typed: no pool for two-stage
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, override, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(override))
    out = _snakemake(tmp_path, "--configfile", str(cfg))
    assert out.returncode != 0
    assert needle in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_a_missing_key_is_an_error(tmp_path):
    """A config file that replaces a whole section must state every key of it."""
    from soseleto.config import from_mapping, workflow_config

    full = yaml.safe_load((REPO / "config/config.yaml").read_text())
    del full["noisy"]["trainer"]["lr_alpha"]
    with pytest.raises(ValueError, match="missing config key.*noisy.trainer.lr_alpha"):
        workflow_config(full)
    assert from_mapping  # the library (and soseleto fit) keep the dataclass defaults


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


def test_another_data_set_is_one_config_file(tmp_path):
    """config/fashionmnist.yaml moves both protocols to other sets; result paths name them."""
    generated = tmp_path / "generated.yaml"
    generated.write_text(yaml.safe_dump({"data": {"source": "generated", "download": False}}))
    out = _snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/fashionmnist.yaml"), str(generated))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "results/noisy/fashionmnist-generated/noise0.4/soseleto/seed2/alpha.csv" in text
    assert "results/tables/kmnist-generated_01234-to-mnist-generated_56789/table2.md" in text
    assert "cifar10" not in text and "svhn" not in text and "appendix_c" not in text


def test_data_set_names_with_regex_and_brace_characters(tmp_path):
    """A data set file named with + ( ) $ { }: its tag is matched literally (escaped in the wildcard
    regex) and its braces, which would open a wildcard in a path, become parentheses."""
    import numpy as np

    data = tmp_path / "odd+set(1)$x{v}.npz"
    g = np.random.default_rng(0)
    np.savez(data, x=g.integers(0, 255, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 10)
    odd = tmp_path / "odd.yaml"
    odd.write_text(yaml.safe_dump({
        "noisy": {"split": {"dataset": str(data), "test_per_class": 1, "n_target": 20}},
        "transfer": {"source": {"dataset": str(data), "classes": [0, 1, 2, 3, 4]},
                     "target": {"dataset": str(data), "classes": [5, 6, 7, 8, 9]},
                     "methods": ["target_only", "soseleto"], "appendix_c": {"enabled": False}}}))
    out = _snakemake(tmp_path, "-n", "--configfile", str(REPO / "config/smoke.yaml"), str(odd))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "results/data/odd+set(1)$x(v).json" in text
    assert "results/noisy/odd+set(1)$x(v)/noise0.5/soseleto/seed1/metrics.json" in text
    assert "results/transfer/odd+set(1)$x(v)_01234-to-odd+set(1)$x(v)_56789/" in text
