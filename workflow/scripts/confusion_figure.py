"""Snakemake script: heatmaps of the label-confusion matrices, one panel per noise level."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, noisy  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
noisy.write_confusion_figure(
    list(snakemake.input),  # noqa: F821
    snakemake.params.noise_levels,  # noqa: F821
    outputs=[snakemake.output.png, snakemake.output.pdf],  # noqa: F821
)
