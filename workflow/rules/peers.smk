# Beyond the paper, on Table 1's split (workflow/rules/noisy.smk): the peer methods side by side
# (table1_peers) and label-error detection (label_errors). Per (noise level, peer, seed): one
# training run; per (noise level, seed): one cleanlab job (out-of-fold probabilities of the
# noisy baseline).

PEERS = [m for m in NOISY_METHODS if m in _config.PEER_METHODS]
LABEL_ERROR_RUNS = _label_errors.detection_runs(NOISY_METHODS, NOISE_TAGS, NOISY["seeds"], run=NOISY_RUN)
BEYOND = "Beyond the paper: peer methods and label-error detection"


rule noisy_peer:
    input:
        split="results/noisy/noise{noise}/split.csv",
    output:
        metrics="results/noisy/noise{noise}/{peer}/seed{seed}/metrics.json",
        checkpoint="results/noisy/noise{noise}/{peer}/seed{seed}/model.ckpt",
    params:
        method=lambda wildcards: wildcards.peer,
        noisy=lambda wildcards: _noisy.rule_params(NOISY, wildcards.peer),
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
        peer="joint|glc|noise_layer",  # l2rw also writes its scores: rule noisy_l2rw
    log:
        "logs/noisy/noise{noise}/{peer}/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/{peer}/seed{seed}.tsv"
    threads: NOISY_THREADS
    resources:
        gpu=GPU,
        runtime=1440,  # glc trains two networks
        mem_mb=8000,
    conda:
        ENV
    script:
        "../scripts/noisy_run.py"


use rule noisy_peer as noisy_l2rw with:
    output:
        metrics="results/noisy/noise{noise}/l2rw/seed{seed}/metrics.json",
        checkpoint="results/noisy/noise{noise}/l2rw/seed{seed}/model.ckpt",
        scores="results/noisy/noise{noise}/l2rw/seed{seed}/scores.csv",
    params:
        method="l2rw",
        noisy=_noisy.rule_params(NOISY, "l2rw"),
        data=config["data"],
        device=config["device"],
    log:
        "logs/noisy/noise{noise}/l2rw/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/l2rw/seed{seed}.tsv"


rule noisy_cleanlab:
    input:
        split="results/noisy/noise{noise}/split.csv",
    output:
        scores="results/noisy/noise{noise}/cleanlab/seed{seed}/scores.csv",
    params:
        noisy=_noisy.rule_params(NOISY, "cleanlab"),
        data=config["data"],
        device=config["device"],
    wildcard_constraints:
        noise=r"[0-9.]+",
        seed=r"\d+",
    log:
        "logs/noisy/noise{noise}/cleanlab/seed{seed}.log",
    benchmark:
        "benchmarks/noisy/noise{noise}/cleanlab/seed{seed}.tsv"
    threads: NOISY_THREADS
    resources:
        gpu=GPU,
        runtime=2880,  # cleanlab_folds networks, each (k - 1)/k of a noisy baseline
        mem_mb=8000,
    conda:
        ENV
    script:
        "../scripts/noisy_cleanlab.py"


rule table1_peers:
    input:
        metrics=expand(f"{NOISY_RUN}/metrics.json", noise=NOISE_TAGS, method=NOISY_METHODS, seed=NOISY["seeds"]),
    output:
        csv=report(
            "results/tables/table1_peers.csv",
            caption="../report/table1_peers.rst",
            category=BEYOND,
            labels={"result": "Table 1 with the peer methods", "kind": "table"},
        ),
        md="results/tables/table1_peers.md",
    log:
        "logs/tables/table1_peers.log",
    resources:
        runtime=5,
        mem_mb=1000,
    conda:
        ENV
    script:
        "../scripts/table1_peers.py"


rule label_errors:
    input:
        [run["path"] for run in LABEL_ERROR_RUNS],
    output:
        csv=report(
            "results/tables/label_errors.csv",
            caption="../report/label_errors.rst",
            category=BEYOND,
            labels={"result": "label-error detection", "kind": "table"},
        ),
        md="results/tables/label_errors.md",
        png=report(
            "results/figures/label_errors_pr.png",
            caption="../report/label_errors_pr.rst",
            category=BEYOND,
            labels={"result": "label-error detection", "kind": "figure"},
        ),
        pdf="results/figures/label_errors_pr.pdf",
    params:
        runs=LABEL_ERROR_RUNS,
    log:
        "logs/tables/label_errors.log",
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        ENV
    script:
        "../scripts/label_errors.py"


rule peers_all:
    input:
        rules.table1_peers.output,
        rules.label_errors.output if LABEL_ERROR_RUNS else [],
