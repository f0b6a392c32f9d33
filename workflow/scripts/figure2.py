"""Snakemake script: Figure 2 (effective noise vs fraction of source kept) from SOSELETO's alpha."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, table1  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
table1.write_figure2(
    list(snakemake.input.alpha),  # noqa: F821
    snakemake.params.noises,  # noqa: F821
    out_csv=snakemake.output.csv,  # noqa: F821
    outputs=[snakemake.output.png, snakemake.output.pdf],  # noqa: F821
)
