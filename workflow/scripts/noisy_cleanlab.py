"""Snakemake script: cleanlab's scores of one (noise level, seed) noisy source (label_errors)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

import torch  # noqa: E402

from soseleto import label_errors, logs  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821  CPU runs use the cores Snakemake granted
label_errors.run_cleanlab(
    snakemake.params.noisy,  # noqa: F821
    snakemake.params.data,  # noqa: F821
    noise=float(snakemake.wildcards.noise),  # noqa: F821
    seed=int(snakemake.wildcards.seed),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    split_csv=snakemake.input.split,  # noqa: F821
    scores_csv=snakemake.output.scores,  # noqa: F821
)
