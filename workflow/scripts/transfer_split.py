"""Snakemake script: one index file of the transfer experiments (SVHN source, MNIST target or test)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, transfer  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
wc = snakemake.wildcards  # noqa: F821
transfer.write_split(
    snakemake.params.kind,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    classes=[int(c) for c in wc.classes],
    n_target=int(wc.get("nt", 0)),
    seed=int(wc.get("seed", 0)),
)
