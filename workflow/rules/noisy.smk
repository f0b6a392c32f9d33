# Section 4.2 / Table 1 / Figure 2: noisy labels on CIFAR-10.
# Per noise level: confusion matrix + split; per (noise level, method, seed): one training run.

NOISY = config["noisy"]
NOISE_TAGS = [f"{float(v):g}" for v in NOISY["noise_levels"]]
NOISY_METHODS = NOISY.get("methods", ["noisy_baseline", "soseleto", "finetune"])
RUN = "results/noisy/noise{noise}/{method}/seed{seed}"


def _noisy_run(method, name):
    return expand(f"{RUN}/{name}", noise=NOISE_TAGS, method=method, seed=NOISY["seeds"])


rule noisy_split:
    output:
        split="results/noisy/noise{noise}/split.csv",
        confusion="results/noisy/noise{noise}/confusion.csv",
        info="results/noisy/noise{noise}/split.json",
    params:
        noisy=NOISY,
        data=config["data"],
    wildcard_constraints:
        noise=r"[0-9.]+",
    log:
        "logs/noisy/noise{noise}/split.log",
    conda:
        ENV
    script:
        "../scripts/noisy_split.py"


rule confusion_figure:
    input:
        expand("results/noisy/noise{noise}/confusion.csv", noise=NOISE_TAGS),
    output:
        png="results/figures/confusion_matrices.png",
        pdf="results/figures/confusion_matrices.pdf",
    params:
        noise_levels=NOISY["noise_levels"],
    log:
        "logs/figures/confusion_matrices.log",
    conda:
        ENV
    script:
        "../scripts/confusion_figure.py"


rule noisy_baseline:
    input:
        split="results/noisy/noise{noise}/split.csv",
    output:
        metrics="results/noisy/noise{noise}/noisy_baseline/seed{seed}/metrics.json",
        checkpoint="results/noisy/noise{noise}/noisy_baseline/seed{seed}/model.ckpt",
    params:
        method="noisy_baseline",
        noisy=NOISY,
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/noisy_baseline/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/noisy_baseline/seed{seed}.tsv"
    threads: 4
    conda:
        ENV
    script:
        "../scripts/noisy_run.py"


rule noisy_soseleto:
    input:
        split="results/noisy/noise{noise}/split.csv",
    output:
        metrics="results/noisy/noise{noise}/soseleto/seed{seed}/metrics.json",
        checkpoint="results/noisy/noise{noise}/soseleto/seed{seed}/model.ckpt",
        alpha="results/noisy/noise{noise}/soseleto/seed{seed}/alpha.csv",
    params:
        method="soseleto",
        noisy=NOISY,
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/soseleto/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/soseleto/seed{seed}.tsv"
    threads: 4
    conda:
        ENV
    script:
        "../scripts/noisy_run.py"


rule noisy_finetune:
    input:
        split="results/noisy/noise{noise}/split.csv",
        init="results/noisy/noise{noise}/noisy_baseline/seed{seed}/model.ckpt",
    output:
        metrics="results/noisy/noise{noise}/finetune/seed{seed}/metrics.json",
        checkpoint="results/noisy/noise{noise}/finetune/seed{seed}/model.ckpt",
    params:
        method="finetune",
        noisy=NOISY,
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/finetune/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/finetune/seed{seed}.tsv"
    threads: 4
    conda:
        ENV
    script:
        "../scripts/noisy_run.py"


rule table1:
    input:
        metrics=_noisy_run(NOISY_METHODS, "metrics.json"),
    output:
        csv="results/tables/table1.csv",
        md="results/tables/table1.md",
    log:
        "logs/tables/table1.log",
    conda:
        ENV
    script:
        "../scripts/table1.py"


rule figure2:
    input:
        alpha=_noisy_run("soseleto", "alpha.csv"),
    output:
        csv="results/tables/figure2.csv",
        png="results/figures/figure2.png",
        pdf="results/figures/figure2.pdf",
    params:
        # the noise level of each input, in expand's order (noise outermost)
        noises=[float(n) for n in NOISE_TAGS for _ in NOISY["seeds"]],
    log:
        "logs/figures/figure2.log",
    conda:
        ENV
    script:
        "../scripts/figure2.py"


rule noisy_all:
    input:
        rules.table1.output,
        rules.confusion_figure.output,
        rules.figure2.output if "soseleto" in NOISY_METHODS else [],
