# Shared definitions for all rules: the typed configuration and the path tags. Only torch-free
# modules of the soseleto package are imported here, so building the DAG never loads torch.
import functools

from soseleto import config as C
from soseleto import paths as P
from soseleto.report import plan as PLAN
from soseleto.jobs import all_cores, gpu_slots

ENV = "../envs/soseleto.yaml"
JOB = "../scripts/job.py"

# Beyond the JSON schema: the typed, complete configuration. A bad value, a missing key or an
# unknown key (named by its dotted path) stops the run before any job starts.
CFG = C.workflow_config(config)
DEVICE = CFG.device

# GPU convention: every rule that trains declares `resources: gpu=GPU`. It is 1 unless the config
# pins training to the CPU, so `--resources gpu=1` (workflow/profiles/default) runs training jobs
# one at a time on one card, and the SLURM profile's executor requests `--gpus=1` for them.
GPU = 0 if DEVICE == "cpu" else 1


# a job's `params.config`: exactly the config entries it reads (see soseleto/jobs.py)
job_config = functools.partial(C.job_params, CFG)


# data sets by their tag in result paths (results/data/<tag>.json)
DATASETS = {
    P.dataset_tag(d): d
    for d in (
        CFG.noisy.split.dataset,
        CFG.transfer.source.dataset,
        CFG.transfer.target.dataset,
    )
}
