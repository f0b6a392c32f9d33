# Section 4.1 / Figure 1: the synthetic noisy-label experiment, one job per seed.

SYN = CFG.synthetic


rule synthetic_seed:
    output:
        points="results/synthetic/seed{seed}/alpha.csv",
        history="results/synthetic/seed{seed}/history.csv",
        metrics="results/synthetic/seed{seed}/metrics.json",
    log:
        "logs/synthetic/seed{seed}.log",
    benchmark:
        "benchmarks/synthetic/seed{seed}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        runtime=10,
        mem_mb=2000,
    params:
        config=job_config("synthetic"),
        device=DEVICE,
    script:
        JOB


rule synthetic_summary:
    input:
        metrics=expand("results/synthetic/seed{seed}/metrics.json", seed=SYN.seeds),
    output:
        csv=report(
            "results/synthetic/summary.csv",
            caption="../report/synthetic_summary.rst",
            category="Section 4.1, synthetic noisy labels",
            labels={"result": "summary", "kind": "table"},
        ),
    log:
        "logs/synthetic/summary.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        JOB


rule figure1:
    input:
        points=expand("results/synthetic/seed{seed}/alpha.csv", seed=SYN.seeds),
        histories=expand("results/synthetic/seed{seed}/history.csv", seed=SYN.seeds),
    output:
        png=report(
            "results/figures/figure1.png",
            caption="../report/figure1.rst",
            category="Section 4.1, synthetic noisy labels",
            labels={"result": "Figure 1", "kind": "figure"},
        ),
        pdf="results/figures/figure1.pdf",
    log:
        "logs/figures/figure1.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=2000,
    params:
        config=job_config("synthetic"),
    script:
        JOB


rule synthetic_all:
    input:
        rules.synthetic_summary.output,
        rules.figure1.output,
