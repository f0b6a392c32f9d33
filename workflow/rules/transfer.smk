# Section 4.3 / Table 2 (SVHN 0-4 -> MNIST 5-9), two-stage SOSELETO, and Appendix C / Figures 3-5
# (SVHN 0-9 -> MNIST 5-9). Index files first, then one training job per (n_target, method, seed).

TR = config["transfer"]
AC = TR["appendix_c"]
DATA = config["data"]
SRC_T2 = _transfer.classes_tag(TRANSFER_CFG.source_classes)
SRC_AC = _transfer.classes_tag(TRANSFER_CFG.appendix_c.source_classes)
TGT = _transfer.classes_tag(TRANSFER_CFG.target_classes)
SPLITS = "results/transfer/splits"
RUN = "results/transfer/table2/nt{nt}/seed{seed}"


wildcard_constraints:
    nt="[0-9]+",
    seed="[0-9]+",
    classes="[0-9]+",


rule transfer_source_split:
    input:
        "results/data/svhn.json",
    output:
        f"{SPLITS}/svhn_train_{{classes}}.csv",
    params:
        kind="source",
        data=DATA,
    log:
        "logs/transfer/splits/svhn_train_{classes}.log",
    resources:
        runtime=15,
        mem_mb=4000,
    conda:
        ENV
    script:
        "../scripts/transfer_split.py"


use rule transfer_source_split as transfer_target_split with:
    input:
        "results/data/mnist.json",
    output:
        f"{SPLITS}/mnist_train_{{classes}}_nt{{nt}}_seed{{seed}}.csv",
    params:
        kind="target",
        data=DATA,
    log:
        "logs/transfer/splits/mnist_train_{classes}_nt{nt}_seed{seed}.log",


use rule transfer_source_split as transfer_test_split with:
    input:
        "results/data/mnist.json",
    output:
        f"{SPLITS}/mnist_test_{{classes}}.csv",
    params:
        kind="test",
        data=DATA,
    log:
        "logs/transfer/splits/mnist_test_{classes}.log",


# -- training jobs ---------------------------------------------------------------------------------
rule transfer_pretrain:
    input:
        source=f"{SPLITS}/svhn_train_{SRC_T2}.csv",
    output:
        metrics="results/transfer/pretrain/seed{seed}/metrics.json",
        checkpoint="results/transfer/pretrain/seed{seed}/checkpoint.pt",
    params:
        method="pretrain",
        transfer=_transfer.rule_params(TR, "pretrain"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/pretrain/seed{seed}.log",
    benchmark:
        "benchmarks/transfer/pretrain/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=GPU,
        runtime=240,
        mem_mb=8000,
    conda:
        ENV
    script:
        "../scripts/transfer_run.py"


use rule transfer_pretrain as transfer_target_only with:
    input:
        target=f"{SPLITS}/mnist_train_{TGT}_nt{{nt}}_seed{{seed}}.csv",
        test=f"{SPLITS}/mnist_test_{TGT}.csv",
    output:
        metrics=f"{RUN}/target_only/metrics.json",
        checkpoint=f"{RUN}/target_only/checkpoint.pt",
    params:
        method="target_only",
        transfer=_transfer.rule_params(TR, "target_only"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/table2/nt{nt}/seed{seed}/target_only.log",
    benchmark:
        "benchmarks/transfer/table2/nt{nt}/seed{seed}/target_only.tsv"


use rule transfer_pretrain as transfer_fine_tuning with:
    input:
        target=f"{SPLITS}/mnist_train_{TGT}_nt{{nt}}_seed{{seed}}.csv",
        test=f"{SPLITS}/mnist_test_{TGT}.csv",
        pretrained="results/transfer/pretrain/seed{seed}/checkpoint.pt",
    output:
        metrics=f"{RUN}/fine_tuning/metrics.json",
        checkpoint=f"{RUN}/fine_tuning/checkpoint.pt",
    params:
        method="fine_tuning",
        transfer=_transfer.rule_params(TR, "pretrain", "finetune"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/table2/nt{nt}/seed{seed}/fine_tuning.log",
    benchmark:
        "benchmarks/transfer/table2/nt{nt}/seed{seed}/fine_tuning.tsv"


use rule transfer_pretrain as transfer_soseleto with:
    input:
        source=f"{SPLITS}/svhn_train_{SRC_T2}.csv",
        target=f"{SPLITS}/mnist_train_{TGT}_nt{{nt}}_seed{{seed}}.csv",
        test=f"{SPLITS}/mnist_test_{TGT}.csv",
    output:
        metrics=f"{RUN}/soseleto/metrics.json",
        checkpoint=f"{RUN}/soseleto/checkpoint.pt",
        alpha=f"{RUN}/soseleto/alpha.csv",
    params:
        method="soseleto",
        transfer=_transfer.rule_params(TR, "soseleto"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/table2/nt{nt}/seed{seed}/soseleto.log",
    benchmark:
        "benchmarks/transfer/table2/nt{nt}/seed{seed}/soseleto.tsv"


use rule transfer_pretrain as transfer_two_stage with:
    input:
        target=f"{SPLITS}/mnist_train_{TGT}_nt{{nt}}_seed{{seed}}.csv",
        test=f"{SPLITS}/mnist_test_{TGT}.csv",
        stage1=f"{RUN}/soseleto/checkpoint.pt",
    output:
        metrics=f"{RUN}/two_stage/metrics.json",
        checkpoint=f"{RUN}/two_stage/checkpoint.pt",
        alpha=f"{RUN}/two_stage/alpha.csv",
    params:
        method="two_stage",
        transfer=_transfer.rule_params(TR, "soseleto", "two_stage", "two_stage_init"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/table2/nt{nt}/seed{seed}/two_stage.log",
    benchmark:
        "benchmarks/transfer/table2/nt{nt}/seed{seed}/two_stage.tsv"


use rule transfer_pretrain as appendix_c_run with:
    input:
        source=f"{SPLITS}/svhn_train_{SRC_AC}.csv",
        target=f"{SPLITS}/mnist_train_{TGT}_nt{TRANSFER_CFG.appendix_c.n_target}_seed{{seed}}.csv",
        test=f"{SPLITS}/mnist_test_{TGT}.csv",
    output:
        metrics="results/transfer/appendix_c/seed{seed}/metrics.json",
        checkpoint="results/transfer/appendix_c/seed{seed}/checkpoint.pt",
        alpha="results/transfer/appendix_c/seed{seed}/alpha.csv",
    params:
        method="appendix_c",
        transfer=_transfer.rule_params(TR, "soseleto", "appendix_c"),
        data=DATA,
        device=config["device"],
    log:
        "logs/transfer/appendix_c/seed{seed}.log",
    benchmark:
        "benchmarks/transfer/appendix_c/seed{seed}.tsv"


# -- tables and figures ----------------------------------------------------------------------------
rule table2:
    input:
        metrics=expand(f"{RUN}/{{method}}/metrics.json", nt=TRANSFER_CFG.n_target, seed=TR["seeds"], method=TRANSFER_CFG.methods),
    output:
        csv=report(
            "results/tables/table2.csv",
            caption="../report/table2.rst",
            category="Section 4.3: transfer SVHN to MNIST",
            labels={"result": "Table 2", "kind": "table"},
        ),
        md="results/tables/table2.md",
    log:
        "logs/tables/table2.log",
    resources:
        runtime=5,
        mem_mb=1000,
    conda:
        ENV
    script:
        "../scripts/table2.py"


rule appendix_c:
    input:
        metrics=expand("results/transfer/appendix_c/seed{seed}/metrics.json", seed=AC["seeds"]),
        alpha=expand("results/transfer/appendix_c/seed{seed}/alpha.csv", seed=AC["seeds"]),
        svhn="results/data/svhn.json",
    output:
        accuracy="results/tables/appendix_c.csv",
        figure3_data="results/tables/figure3.csv",
        figure3=report(
            multiext("results/figures/figure3", ".png", ".pdf"),
            caption="../report/figure3.rst",
            category="Appendix C: SVHN 0-9 to MNIST 5-9",
            labels={"result": "Figure 3", "kind": "figure"},
        ),
        figure4=report(
            multiext("results/figures/figure4", ".png", ".pdf"),
            caption="../report/figure4.rst",
            category="Appendix C: SVHN 0-9 to MNIST 5-9",
            labels={"result": "Figure 4", "kind": "figure"},
        ),
        figure5=report(
            multiext("results/figures/figure5", ".png", ".pdf"),
            caption="../report/figure5.rst",
            category="Appendix C: SVHN 0-9 to MNIST 5-9",
            labels={"result": "Figure 5", "kind": "figure"},
        ),
    params:
        seeds=AC["seeds"],
        data=DATA,
        appendix_c={k: getattr(TRANSFER_CFG.appendix_c, k) for k in ("threshold", "bad_quantile", "grid", "lowest")},
    log:
        "logs/figures/appendix_c.log",
    resources:
        runtime=15,
        mem_mb=4000,
    conda:
        ENV
    script:
        "../scripts/appendix_c.py"


rule transfer_all:
    input:
        rules.table2.output,
        rules.appendix_c.output,
