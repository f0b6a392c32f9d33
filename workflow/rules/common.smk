# Shared definitions for all rules.
import sys

sys.path.insert(0, workflow.basedir)  # the repo's soseleto package, also under --use-conda

from soseleto import noisy as _noisy
from soseleto import synthetic as _synthetic

ENV = "../envs/soseleto.yaml"

# Beyond the JSON schema: build the typed configs now, so that a bad value (named by its key)
# stops the run before any job starts.
_synthetic.config_from_mapping(config["synthetic"])
_noisy.config_from_mapping(config["noisy"])
