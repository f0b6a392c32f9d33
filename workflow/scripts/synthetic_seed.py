"""Snakemake script: one seed of the synthetic experiment (section 4.1)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import logs, synthetic  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
synthetic.run_and_save(
    snakemake.params.synthetic,  # noqa: F821
    seed=int(snakemake.wildcards.seed),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    points_csv=snakemake.output.points,  # noqa: F821
    history_csv=snakemake.output.history,  # noqa: F821
    metrics_json=snakemake.output.metrics,  # noqa: F821
)
