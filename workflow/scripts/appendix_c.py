"""Snakemake script: Appendix C accuracy table and Figures 3-5 from the per-seed alpha CSVs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, transfer_report  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
transfer_report.write_appendix_c(
    snakemake.input.metrics,  # noqa: F821
    snakemake.input.alpha,  # noqa: F821
    snakemake.params.seeds,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    **snakemake.params.appendix_c,  # noqa: F821
    outputs={"accuracy": out.accuracy, "figure3_data": out.figure3_data,
             "figure3": list(out.figure3), "figure4": list(out.figure4), "figure5": list(out.figure5)},
)
