# Section 4.2 / Table 1 / Figure 2: learning with noisy labels (CIFAR-10 in the paper; any data
# set of noisy.split.dataset). Per noise level: confusion matrix + split; per (noise level,
# method, seed): one training run. Results live under results/noisy/<data set>/ (cifar10-generated
# for the generated stand-in of cifar10).

NOISY = CFG.noisy
NOISY_TAG = P.dataset_tag(NOISY.split.dataset, CFG.data)
NOISE_TAGS = [P.noise_tag(v) for v in NOISY.noise_levels]
NOISY_METHODS = list(NOISY.methods)
# the paper's rows of Table 1 (and the alpha-frozen ablation); every method is in table1_peers
# (workflow/rules/peers.smk)
TABLE1_METHODS = [
    m for m in NOISY_METHODS if R.get("noisy", m).row in ("paper", "ablation")
]
NOISY_DIR = f"results/noisy/{NOISY_TAG}"
NOISY_RUN = f"{NOISY_DIR}/noise{{noise}}/{{method}}/seed{{seed}}"
NOISY_BENCH = f"benchmarks/noisy/{NOISY_TAG}/noise{{noise}}/{{method}}/seed{{seed}}.tsv"
NOISY_TABLES = f"results/tables/{NOISY_TAG}"
NOISY_FIGURES = f"results/figures/{NOISY_TAG}"
NOISY_CATEGORY = f"Section 4.2, noisy labels ({NOISY_TAG})"
# what every training job reads besides its own method's settings
NOISY_RUN_PARAMS = R.RUN_PARAMS["noisy"]


wildcard_constraints:
    noise=r"[0-9.]+",
    seed=r"\d+",


rule noisy_split:
    input:
        P.manifest(NOISY.split.dataset, CFG.data),
    output:
        split=f"{NOISY_DIR}/noise{{noise}}/split.csv",
        confusion=f"{NOISY_DIR}/noise{{noise}}/confusion.csv",
        info=f"{NOISY_DIR}/noise{{noise}}/split.json",
    log:
        f"logs/noisy/{NOISY_TAG}/noise{{noise}}/split.log",
    conda:
        ENV
    resources:
        runtime=15,
        mem_mb=4000,
    params:
        config=job_config("noisy.split", "data"),
    script:
        JOB


rule confusion_figure:
    input:
        confusion=expand(f"{NOISY_DIR}/noise{{noise}}/confusion.csv", noise=NOISE_TAGS),
    output:
        png=report(
            f"{NOISY_FIGURES}/confusion_matrices.png",
            caption="../report/confusion_matrices.rst",
            category=NOISY_CATEGORY,
            labels={"result": "confusion matrices", "kind": "figure"},
        ),
        pdf=f"{NOISY_FIGURES}/confusion_matrices.pdf",
    log:
        f"logs/figures/{NOISY_TAG}/confusion_matrices.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=1000,
    params:
        config=job_config("noisy.noise_levels"),
    script:
        JOB


# One job per (noise level, method, seed). A method is an entry of soseleto/config/methods.py:
# its settings, options and the run it starts from come from there (noisy_inputs and
# method_config, workflow/rules/common.smk). Three rules only because the methods write
# different files: nothing per sample, alpha.csv or scores.csv.
rule noisy_run:
    input:
        unpack(noisy_inputs),
    output:
        metrics=f"{NOISY_RUN}/metrics.json",
        checkpoint=f"{NOISY_RUN}/checkpoint.pt",
    log:
        f"logs/noisy/{NOISY_TAG}/noise{{noise}}/{{method}}/seed{{seed}}.log",
    benchmark:
        NOISY_BENCH
    wildcard_constraints:
        method=R.pattern("noisy", scores=None),
    conda:
        ENV
    threads: NOISY.threads
    resources:
        gpu=GPU,
        # minutes; soseleto plan: <= 1 h per job on a CPU (4 threads), minutes on a GPU
        runtime=lambda wildcards: R.get("noisy", wildcards.method).runtime,
        mem_mb=8000,
    params:
        method=lambda wildcards: wildcards.method,
        config=method_config("noisy", *NOISY_RUN_PARAMS),
        device=DEVICE,
    script:
        JOB


use rule noisy_run as noisy_run_alpha with:
    output:
        metrics=f"{NOISY_RUN}/metrics.json",
        checkpoint=f"{NOISY_RUN}/checkpoint.pt",
        alpha=f"{NOISY_RUN}/alpha.csv",
    wildcard_constraints:
        method=R.pattern("noisy", scores="alpha"),


use rule noisy_run as noisy_run_scores with:
    output:
        metrics=f"{NOISY_RUN}/metrics.json",
        checkpoint=f"{NOISY_RUN}/checkpoint.pt",
        scores=f"{NOISY_RUN}/scores.csv",
    wildcard_constraints:
        method=R.pattern("noisy", scores="scores"),


rule table1:
    input:
        metrics=expand(
            f"{NOISY_RUN}/metrics.json",
            noise=NOISE_TAGS,
            method=TABLE1_METHODS,
            seed=NOISY.seeds,
        ),
    output:
        csv=report(
            f"{NOISY_TABLES}/table1.csv",
            caption="../report/table1.rst",
            category=NOISY_CATEGORY,
            labels={"result": "Table 1", "kind": "table"},
        ),
        md=f"{NOISY_TABLES}/table1.md",
    log:
        f"logs/tables/{NOISY_TAG}/table1.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        JOB


rule figure2:
    input:
        alpha=expand(
            f"{NOISY_RUN}/alpha.csv",
            noise=NOISE_TAGS,
            method="soseleto",
            seed=NOISY.seeds,
        ),
    output:
        csv=f"{NOISY_TABLES}/figure2.csv",
        png=report(
            f"{NOISY_FIGURES}/figure2.png",
            caption="../report/figure2.rst",
            category=NOISY_CATEGORY,
            labels={"result": "Figure 2", "kind": "figure"},
        ),
        pdf=f"{NOISY_FIGURES}/figure2.pdf",
    log:
        f"logs/figures/{NOISY_TAG}/figure2.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=2000,
    params:
        # the noise level of each input, in expand's order (noise outermost)
        noises=[float(n) for n in NOISE_TAGS for _ in NOISY.seeds],
    script:
        JOB


rule noisy_curves:
    input:
        metrics=expand(
            f"{NOISY_RUN}/metrics.json",
            noise=NOISE_TAGS,
            method=NOISY_METHODS,
            seed=NOISY.seeds,
        ),
    output:
        csv=f"{NOISY_TABLES}/curves.csv",
        png=report(
            f"{NOISY_FIGURES}/curves.png",
            caption="../report/noisy_curves.rst",
            category=NOISY_CATEGORY,
            labels={"result": "test accuracy per epoch", "kind": "figure"},
        ),
        pdf=f"{NOISY_FIGURES}/curves.pdf",
    log:
        f"logs/figures/{NOISY_TAG}/curves.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=2000,
    params:
        title=f"Noisy labels ({NOISY_TAG}): test accuracy per epoch",
    script:
        JOB


rule noisy_alpha_histograms:
    input:
        alpha=expand(
            f"{NOISY_RUN}/alpha.csv",
            noise=NOISE_TAGS,
            method="soseleto",
            seed=NOISY.seeds,
        ),
    output:
        png=report(
            f"{NOISY_FIGURES}/alpha_histograms.png",
            caption="../report/alpha_histograms.rst",
            category=NOISY_CATEGORY,
            labels={"result": "alpha histograms", "kind": "figure"},
        ),
        pdf=f"{NOISY_FIGURES}/alpha_histograms.pdf",
    log:
        f"logs/figures/{NOISY_TAG}/alpha_histograms.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=2000,
    params:
        noises=[float(n) for n in NOISE_TAGS for _ in NOISY.seeds],
        data=NOISY_TAG,
    script:
        JOB


rule noisy_all:
    input:
        rules.table1.output if TABLE1_METHODS else [],
        rules.confusion_figure.output,
        rules.figure2.output if "soseleto" in NOISY_METHODS else [],
        rules.noisy_alpha_histograms.output if "soseleto" in NOISY_METHODS else [],
        rules.noisy_curves.output,
