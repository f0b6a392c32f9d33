# Image data sets: one job per data set loads (and, with data.download, downloads) every split
# before any job reads them, so parallel jobs never race to download the same files.
import re


rule dataset:
    output:
        manifest="results/data/{dataset}.json",
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset="|".join(map(re.escape, DATASETS)),  # names may hold + ( ) $ ...
    conda:
        ENV
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        dataset=lambda wildcards: DATASETS[wildcards.dataset],
        config=job_config("data"),
    script:
        JOB
