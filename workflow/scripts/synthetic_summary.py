"""Snakemake script: results/synthetic/summary.csv, one row per seed."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, synthetic  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
synthetic.write_summary(snakemake.input.metrics, snakemake.output[0])  # noqa: F821
