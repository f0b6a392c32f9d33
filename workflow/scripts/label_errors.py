"""Snakemake script: results/tables/label_errors.csv/.md and the precision-recall figure."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import label_errors, logs  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
label_errors.write_label_errors(
    snakemake.params.runs,  # noqa: F821
    out_csv=snakemake.output.csv,  # noqa: F821
    out_md=snakemake.output.md,  # noqa: F821
    figures=[snakemake.output.png, snakemake.output.pdf],  # noqa: F821
)
