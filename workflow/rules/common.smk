# Shared definitions for all rules: the typed configuration and the path tags. Only torch-free
# modules of the soseleto package are imported here, so building the DAG never loads torch.
import functools
import os
import sys

from soseleto import config as C
from soseleto.config import methods as R
from soseleto import paths as P
from soseleto.cost import plan as PLAN
from soseleto.jobs import all_cores, gpu_slots, SHARE_COST_KEYS, STEP_COST_KEYS

ENV = "../envs/soseleto.yaml"
JOB = "../scripts/job.py"

# Beyond the JSON schema: the typed, complete configuration. A bad value, a missing key or an
# unknown key (named by its dotted path) stops the run before any job starts.
CFG = C.workflow_config(config)
DEVICE = CFG.device

# GPU convention: the training rules declare `gpu=GPU` among their resources. It is 1 unless the config
# pins training to the CPU, so `--resources gpu=1` (workflow/profiles/default) runs training jobs
# one at a time on one card, and the SLURM profile's executor requests `--gpus=1` for them.
GPU = 0 if DEVICE == "cpu" else 1


# a job's `params.config`: exactly the config entries it reads (see soseleto/jobs.py)
job_config = functools.partial(C.job_params, CFG)


# data sets by their tag in result paths (results/data/<tag>.json; cifar10-generated for the
# generated stand-in of cifar10: soseleto/paths.py names every result path)
DATASETS = {
    P.dataset_tag(d, CFG.data): d
    for d in (
        CFG.noisy.split.dataset,
        CFG.transfer.source.dataset,
        CFG.transfer.target.dataset,
    )
}


def log_of(result):
    """logs/<path>.log: the log of the job that writes results/<path>.<ext>."""
    stem = os.path.splitext(result.removeprefix("results/"))[0]
    return f"logs/{stem}.log"


# -- training jobs: what a method's job reads, from the registry (soseleto/config/methods.py) ----------
def method_config(protocol, *common):
    """A rule's params.config for the method of the job's {method} wildcard: the config entries it
    reads (its settings, options and the settings of the run it starts from) and `common`.
    """
    return lambda wildcards: job_config(
        *R.get(protocol, wildcards.method).config_paths(), *common
    )


def noisy_inputs(wildcards):
    """A Table 1 run's split and, for a method that starts from another run, its checkpoint."""
    method = R.get("noisy", wildcards.method)
    inputs = {"split": f"{NOISY_DIR}/noise{wildcards.noise}/split.csv"}
    if method.starts_from:
        first = NOISY_RUN.format(
            noise=wildcards.noise, method=method.starts_from, seed=wildcards.seed
        )
        inputs["init"] = os.path.join(first, "checkpoint.pt")
    return inputs


def transfer_inputs(wildcards):
    """A Table 2 run's splits (the source only for a method that trains on it) and, for a method
    that starts from another run, its checkpoint (a stage such as pretrain: one per seed).
    """
    method = R.get("transfer", wildcards.method)
    split = f"{SPLITS}/{{}}_nt{wildcards.nt}_seed{wildcards.seed}.csv"
    inputs = {"target": split.format("target"), "test": split.format("test")}
    if any(data == "source" for data, _ in method.passes):
        inputs["source"] = f"{SPLITS}/source.csv"
    if method.starts_from:
        first = R.get("transfer", method.starts_from)
        run = (
            f"{TR_DIR}/{first.name}/seed{{seed}}"
            if first.row == "stage"
            else f"{TR_RUN}/{first.name}"
        )
        run = run.format(nt=wildcards.nt, seed=wildcards.seed)
        inputs["init"] = os.path.join(run, "checkpoint.pt")
    return inputs


# -- snakemake --report: the report of what this config has made -----------------------------------
REPORTING = any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv)


def made(*groups):
    """The files of `groups` (rules' outputs or inputs), for rule all. Under `snakemake --report`
    only those that exist: the report shows what this config has made, and Snakemake neither warns
    that a result not made yet has no metadata nor stops at it. The others are counted on stderr.
    """
    files = [str(f) for group in groups for f in group]
    if not REPORTING:
        return files
    present = [f for f in files if os.path.exists(f)]
    if len(present) < len(files):
        missing = [f for f in files if f not in present]
        print(
            f"soseleto: the report leaves out {len(missing)} of the {len(files)} results of this "
            f"config, not made yet (e.g. {missing[0]}): run the workflow with the same --configfile first",
            file=sys.stderr,
        )
    return present
