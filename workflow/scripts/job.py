"""Snakemake script of every rule: the job's function in soseleto.jobs, picked by its rule name."""
from soseleto.jobs import run

run(snakemake)  # noqa: F821  (Snakemake defines it)
