"""Snakemake script: results/benchmarks/step_cost.csv (soseleto.bench)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))  # noqa: F821  the repo's soseleto

from soseleto import bench, logs  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
b = snakemake.params.bench  # noqa: F821
argv = ["--device", snakemake.params.device, "--reps", str(b.get("reps", 20)), "--out", snakemake.output[0]]  # noqa: F821
argv += ["--models", *b.get("models", list(bench.SETTINGS))]
argv += ["--quick"] if b.get("quick", False) else []
argv += ["--threads", str(b["threads"])] if b.get("threads") else []
bench.main(argv)
