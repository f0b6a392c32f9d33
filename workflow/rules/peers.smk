# Beyond the paper, on Table 1's split (workflow/rules/noisy.smk): the peer methods side by side
# (table1_peers) and label-error detection (label_errors). Per (noise level, peer, seed): one
# training run; per (noise level, seed): one cleanlab job (out-of-fold probabilities of the
# noisy baseline).

LABEL_ERROR_RUNS = P.detection_runs(
    NOISY_METHODS,
    NOISE_TAGS,
    NOISY.seeds,
    run=NOISY_RUN,
    bench=NOISY_BENCH,
    cleanlab=NOISY.cleanlab_folds > 0,
)
BEYOND = f"Beyond the paper, peer methods and label-error detection ({NOISY_TAG})"


rule noisy_cleanlab:
    input:
        split=f"{NOISY_DIR}/noise{{noise}}/split.csv",
    output:
        scores=f"{NOISY_DIR}/noise{{noise}}/cleanlab/seed{{seed}}/scores.csv",
    log:
        f"logs/noisy/{NOISY_TAG}/noise{{noise}}/cleanlab/seed{{seed}}.log",
    benchmark:
        NOISY_BENCH.replace("{method}", "cleanlab")
    conda:
        ENV
    threads: NOISY.threads
    resources:
        gpu=GPU,
        runtime=720,  # cleanlab_folds networks, each (k - 1)/k of a noisy baseline (plan: ~3 h on a CPU)
        mem_mb=8000,
    params:
        config=job_config("noisy.baseline", "noisy.cleanlab_folds", *NOISY_RUN_PARAMS),
        device=DEVICE,
    script:
        JOB


use rule table1 as table1_peers with:
    input:
        metrics=expand(
            f"{NOISY_RUN}/metrics.json",
            noise=NOISE_TAGS,
            method=NOISY_METHODS,
            seed=NOISY.seeds,
        ),
    output:
        csv=report(
            f"{NOISY_TABLES}/table1_peers.csv",
            caption="../report/table1_peers.rst",
            category=BEYOND,
            labels={"result": "Table 1 with the peer methods", "kind": "table"},
        ),
        md=f"{NOISY_TABLES}/table1_peers.md",
    log:
        f"logs/tables/{NOISY_TAG}/table1_peers.log",


rule label_errors:
    input:
        scores=[run["path"] for run in LABEL_ERROR_RUNS],
        benchmarks=[run["benchmark"] for run in LABEL_ERROR_RUNS],
    output:
        csv=report(
            f"{NOISY_TABLES}/label_errors.csv",
            caption="../report/label_errors.rst",
            category=BEYOND,
            labels={"result": "label-error detection", "kind": "table"},
        ),
        md=f"{NOISY_TABLES}/label_errors.md",
        png=report(
            f"{NOISY_FIGURES}/label_errors_pr.png",
            caption="../report/label_errors_pr.rst",
            category=BEYOND,
            labels={"result": "label-error detection", "kind": "figure"},
        ),
        pdf=f"{NOISY_FIGURES}/label_errors_pr.pdf",
    log:
        f"logs/tables/{NOISY_TAG}/label_errors.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        runs=LABEL_ERROR_RUNS,
    script:
        JOB


rule peers_all:
    input:
        rules.table1_peers.output,
        rules.label_errors.output if LABEL_ERROR_RUNS else [],
