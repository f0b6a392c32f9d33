"""Snakemake script: results/tables/table2.{csv,md} from the per-run metrics."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, transfer_report  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
transfer_report.write_table2(snakemake.input.metrics, snakemake.output.csv, snakemake.output.md)  # noqa: F821
