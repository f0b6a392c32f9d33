"""Snakemake script: one training job of Table 2 / Appendix C (method given by the rule)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, transfer  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
wc = snakemake.wildcards  # noqa: F821
transfer.run_and_save(
    snakemake.params.transfer,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    method=snakemake.params.method,  # noqa: F821
    seed=int(wc.seed),
    n_target=int(wc.nt) if "nt" in wc.keys() else None,
    device=snakemake.params.device,  # noqa: F821
    inputs=dict(snakemake.input.items()),  # noqa: F821
    outputs=dict(snakemake.output.items()),  # noqa: F821
)
