"""Snakemake script: results/tables/table1_peers.csv (tidy) and .md (every method side by side)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, table1  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
table1.write_table1(list(snakemake.input.metrics), snakemake.output.csv, snakemake.output.md,  # noqa: F821
                    side_by_side=True)
