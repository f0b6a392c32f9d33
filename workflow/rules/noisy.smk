# Section 4.2 / Table 1 / Figure 2: noisy labels on CIFAR-10.
# Per noise level: confusion matrix + split; per (noise level, method, seed): one training run.

NOISY = config["noisy"]
NOISY_THREADS = NOISY_CFG.threads  # the typed config holds the default
NOISE_TAGS = [f"{float(v):g}" for v in NOISY["noise_levels"]]
NOISY_METHODS = list(NOISY.get("methods", _config.PAPER_METHODS))
# the paper's rows of Table 1; every method (the peers of workflow/rules/peers.smk too) is in table1_peers
TABLE1_METHODS = [m for m in NOISY_METHODS if m in _config.PAPER_METHODS]
NOISY_RUN = "results/noisy/noise{noise}/{method}/seed{seed}"


rule noisy_split:
    input:
        "results/data/cifar10.json",
    output:
        split="results/noisy/noise{noise}/split.csv",
        confusion="results/noisy/noise{noise}/confusion.csv",
        info="results/noisy/noise{noise}/split.json",
    params:
        noisy=_noisy.rule_params(NOISY, "split"),
        data=config["data"],
    wildcard_constraints:
        noise=r"[0-9.]+",
    log:
        "logs/noisy/noise{noise}/split.log",
    resources:
        runtime=15,
        mem_mb=4000,
    conda:
        ENV
    script:
        "../scripts/noisy_split.py"


rule confusion_figure:
    input:
        expand("results/noisy/noise{noise}/confusion.csv", noise=NOISE_TAGS),
    output:
        png=report(
            "results/figures/confusion_matrices.png",
            caption="../report/confusion_matrices.rst",
            category="Section 4.2: noisy labels on CIFAR-10",
            labels={"result": "confusion matrices", "kind": "figure"},
        ),
        pdf="results/figures/confusion_matrices.pdf",
    params:
        noise_levels=NOISY["noise_levels"],
    log:
        "logs/figures/confusion_matrices.log",
    resources:
        runtime=5,
        mem_mb=1000,
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
        noisy=_noisy.rule_params(NOISY, "noisy_baseline"),
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/noisy_baseline/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/noisy_baseline/seed{seed}.tsv"
    threads: NOISY_THREADS
    resources:
        gpu=GPU,
        runtime=720,
        mem_mb=8000,
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
        noisy=_noisy.rule_params(NOISY, "soseleto"),
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/soseleto/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/soseleto/seed{seed}.tsv"
    threads: NOISY_THREADS
    resources:
        gpu=GPU,
        runtime=720,
        mem_mb=8000,
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
        noisy=_noisy.rule_params(NOISY, "finetune"),
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/finetune/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/finetune/seed{seed}.tsv"
    threads: NOISY_THREADS
    resources:
        gpu=GPU,
        runtime=720,
        mem_mb=8000,
    conda:
        ENV
    script:
        "../scripts/noisy_run.py"


rule table1:
    input:
        metrics=expand(f"{NOISY_RUN}/metrics.json", noise=NOISE_TAGS, method=TABLE1_METHODS, seed=NOISY["seeds"]),
    output:
        csv=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Section 4.2: noisy labels on CIFAR-10",
            labels={"result": "Table 1", "kind": "table"},
        ),
        md="results/tables/table1.md",
    log:
        "logs/tables/table1.log",
    resources:
        runtime=5,
        mem_mb=1000,
    conda:
        ENV
    script:
        "../scripts/table1.py"


rule figure2:
    input:
        alpha=expand(f"{NOISY_RUN}/alpha.csv", noise=NOISE_TAGS, method="soseleto", seed=NOISY["seeds"]),
    output:
        csv="results/tables/figure2.csv",
        png=report(
            "results/figures/figure2.png",
            caption="../report/figure2.rst",
            category="Section 4.2: noisy labels on CIFAR-10",
            labels={"result": "Figure 2", "kind": "figure"},
        ),
        pdf="results/figures/figure2.pdf",
    params:
        # the noise level of each input, in expand's order (noise outermost)
        noises=[float(n) for n in NOISE_TAGS for _ in NOISY["seeds"]],
    log:
        "logs/figures/figure2.log",
    resources:
        runtime=5,
        mem_mb=2000,
    conda:
        ENV
    script:
        "../scripts/figure2.py"


rule noisy_all:
    input:
        rules.table1.output if TABLE1_METHODS else [],
        rules.confusion_figure.output,
        rules.figure2.output if "soseleto" in NOISY_METHODS else [],
