# Image data sets: one job per data set loads (and, with data.download, downloads) both splits
# before any job reads them, so parallel jobs never race to download the same files.


rule dataset:
    output:
        "results/data/{dataset}.json",
    wildcard_constraints:
        dataset="cifar10|svhn|mnist",
    params:
        data=config["data"],
    log:
        "logs/data/{dataset}.log",
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        ENV
    script:
        "../scripts/dataset.py"
