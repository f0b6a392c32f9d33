"""Snakemake script: load (download when configured) one data set; write its sizes and class counts."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import data, io, logs  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
io.write_json(data.manifest(snakemake.wildcards.dataset, params.data), snakemake.output[0],  # noqa: F821
              prov=io.provenance({"data": dict(params.data)}))
