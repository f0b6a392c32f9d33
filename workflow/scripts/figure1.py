"""Snakemake script: Figure 1 (a)-(e) from the per-seed alpha and history CSVs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, synthetic  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
synthetic.write_figure1(
    snakemake.input.points,  # noqa: F821
    snakemake.input.histories,  # noqa: F821
    snakemake.params.seeds,  # noqa: F821
    threshold=snakemake.params.threshold,  # noqa: F821
    outputs=[snakemake.output.png, snakemake.output.pdf],  # noqa: F821
)
