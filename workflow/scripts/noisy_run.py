"""Snakemake script: one (noise level, method, seed) training run of Table 1 (or of a peer method)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

import torch  # noqa: E402

from soseleto import logs, noisy  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821  CPU runs use the cores Snakemake granted
noisy.run_method(
    snakemake.params.noisy,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    method=snakemake.params.method,  # noqa: F821
    noise=float(snakemake.wildcards.noise),  # noqa: F821
    seed=int(snakemake.wildcards.seed),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    split_csv=snakemake.input.split,  # noqa: F821
    metrics_json=snakemake.output.metrics,  # noqa: F821
    checkpoint=snakemake.output.checkpoint,  # noqa: F821
    alpha_csv=snakemake.output.get("alpha"),  # noqa: F821
    scores_csv=snakemake.output.get("scores"),  # noqa: F821
    init_checkpoint=snakemake.input.get("init"),  # noqa: F821
)
