# Shared definitions for all rules.
import sys

sys.path.insert(0, workflow.basedir)  # the repo's soseleto package, also under --use-conda

from soseleto import config as _config
from soseleto import label_errors as _label_errors
from soseleto import noisy as _noisy
from soseleto import synthetic as _synthetic
from soseleto import transfer as _transfer

ENV = "../envs/soseleto.yaml"

# GPU convention: every rule that trains declares `resources: gpu=GPU`. It is 1 unless the config
# pins training to the CPU, so `--resources gpu=1` (workflow/profiles/default) runs training jobs
# one at a time on one card, and the SLURM profile's executor requests `--gpus=1` for them.
GPU = 0 if config["device"] == "cpu" else 1

# Beyond the JSON schema: build the typed configs now, so that a bad value (named by its key)
# stops the run before any job starts.
_synthetic.config_from_mapping(config["synthetic"])
TRANSFER_CFG = _transfer.config_from_mapping(config["transfer"])
NOISY_CFG = _noisy.config_from_mapping(config["noisy"])
