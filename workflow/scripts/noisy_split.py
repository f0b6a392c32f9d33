"""Snakemake script: confusion matrix and clean/noisy split of CIFAR-10's train set for one noise level."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, noisy  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
noisy.write_split(
    snakemake.params.noisy,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    noise=float(snakemake.wildcards.noise),  # noqa: F821
    split_csv=snakemake.output.split,  # noqa: F821
    confusion_csv=snakemake.output.confusion,  # noqa: F821
    info_json=snakemake.output.info,  # noqa: F821
)
