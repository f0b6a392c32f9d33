# Section 4.3 / Table 2 (SVHN 0-4 -> MNIST 5-9 in the paper; any transfer.source/target),
# two-stage SOSELETO, and Appendix C / Figures 3-5 (all source classes -> the target classes).
# Index files first, then one training job per (n_target, method, seed). Results live under
# results/transfer/<task>/.

TR = CFG.transfer
AC = TR.appendix_c
TASK = P.transfer_tag(TR.source, TR.target, CFG.data)
TASK_AC = P.transfer_tag(
    C.SideConfig(TR.source.dataset, AC.source_classes), TR.target, CFG.data
)
TR_DIR = f"results/transfer/{TASK}"
SPLITS = f"{TR_DIR}/splits"
TR_RUN = f"{TR_DIR}/nt{{nt}}/seed{{seed}}"
AC_DIR = f"results/transfer/{TASK_AC}/appendix_c"
TR_TABLES = f"results/tables/{TASK}"
AC_FIGURES = f"results/figures/{TASK_AC}"
TR_FIGURES = f"results/figures/{TASK}"
TR_CATEGORY = f"Section 4.3, transfer ({TASK})"
AC_CATEGORY = f"Appendix C, transfer ({TASK_AC})"
# what every training job reads besides its own method's settings
TASK_PARAMS = R.RUN_PARAMS["transfer"]


wildcard_constraints:
    nt="[0-9]+",
    seed="[0-9]+",


rule transfer_source_split:
    input:
        P.manifest(TR.source.dataset, CFG.data),
    output:
        split=f"{SPLITS}/source.csv",
    log:
        f"logs/transfer/{TASK}/splits/source.log",
    conda:
        ENV
    resources:
        runtime=15,
        mem_mb=4000,
    params:
        config=job_config(
            "transfer.source", "transfer.target", "transfer.test_per_class", "data"
        ),
    script:
        JOB


use rule transfer_source_split as appendix_c_source_split with:
    output:
        split=f"{AC_DIR}/source.csv",
    log:
        f"logs/transfer/{TASK_AC}/splits/appendix_c_source.log",
    params:
        config=job_config(
            "transfer.source",
            "transfer.appendix_c",
            "transfer.target",
            "transfer.test_per_class",
            "data",
        ),
        appendix_c=True,


use rule transfer_source_split as transfer_target_split with:
    input:
        P.manifest(TR.target.dataset, CFG.data),
    output:
        target=f"{SPLITS}/target_nt{{nt}}_seed{{seed}}.csv",
        test=f"{SPLITS}/test_nt{{nt}}_seed{{seed}}.csv",
    log:
        f"logs/transfer/{TASK}/splits/target_nt{{nt}}_seed{{seed}}.log",
    params:
        config=job_config("transfer.target", "transfer.test_per_class", "data"),


# -- training jobs ---------------------------------------------------------------------------------
rule transfer_pretrain:
    input:
        source=f"{SPLITS}/source.csv",
    output:
        metrics=f"{TR_DIR}/pretrain/seed{{seed}}/metrics.json",
        checkpoint=f"{TR_DIR}/pretrain/seed{{seed}}/checkpoint.pt",
    log:
        f"logs/transfer/{TASK}/pretrain/seed{{seed}}.log",
    benchmark:
        f"benchmarks/transfer/{TASK}/pretrain/seed{{seed}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=GPU,
        runtime=60,  # soseleto plan: <= 0.1 h per job on a CPU, minutes on a GPU
        mem_mb=8000,
    params:
        method="pretrain",
        config=job_config(*R.get("transfer", "pretrain").config_paths(), *TASK_PARAMS),
        device=DEVICE,
    script:
        JOB


# One job per (n_target, seed, method). A method is an entry of soseleto/config/methods.py: its
# settings, options and the run it starts from come from there (transfer_inputs and
# method_config, workflow/rules/common.smk). Two rules only because the methods write different
# files (alpha.csv or not).
use rule transfer_pretrain as transfer_run with:
    input:
        unpack(transfer_inputs),
    output:
        metrics=f"{TR_RUN}/{{method}}/metrics.json",
        checkpoint=f"{TR_RUN}/{{method}}/checkpoint.pt",
    log:
        f"logs/transfer/{TASK}/nt{{nt}}/seed{{seed}}/{{method}}.log",
    benchmark:
        f"benchmarks/transfer/{TASK}/nt{{nt}}/seed{{seed}}/{{method}}.tsv"
    wildcard_constraints:
        method=R.pattern("transfer", scores=None),
    resources:
        gpu=GPU,
        runtime=lambda wildcards: R.get("transfer", wildcards.method).runtime,
        mem_mb=8000,
    params:
        method=lambda wildcards: wildcards.method,
        config=method_config("transfer", *TASK_PARAMS),
        device=DEVICE,


use rule transfer_run as transfer_run_alpha with:
    output:
        metrics=f"{TR_RUN}/{{method}}/metrics.json",
        checkpoint=f"{TR_RUN}/{{method}}/checkpoint.pt",
        alpha=f"{TR_RUN}/{{method}}/alpha.csv",
    wildcard_constraints:
        method=R.pattern("transfer", scores="alpha"),


use rule transfer_pretrain as appendix_c_run with:
    input:
        source=f"{AC_DIR}/source.csv",
        target=f"{SPLITS}/target_nt{AC.n_target}_seed{{seed}}.csv",
        test=f"{SPLITS}/test_nt{AC.n_target}_seed{{seed}}.csv",
    output:
        metrics=f"{AC_DIR}/seed{{seed}}/metrics.json",
        checkpoint=f"{AC_DIR}/seed{{seed}}/checkpoint.pt",
        alpha=f"{AC_DIR}/seed{{seed}}/alpha.csv",
    log:
        f"logs/transfer/{TASK_AC}/appendix_c/seed{{seed}}.log",
    benchmark:
        f"benchmarks/transfer/{TASK_AC}/appendix_c/seed{{seed}}.tsv"
    params:
        method="appendix_c",
        config=job_config(
            *R.get("transfer", "appendix_c").config_paths(),
            "transfer.appendix_c",
            *TASK_PARAMS,
        ),
        device=DEVICE,


# -- tables and figures ----------------------------------------------------------------------------
rule table2:
    input:
        metrics=expand(
            f"{TR_RUN}/{{method}}/metrics.json",
            nt=TR.n_target,
            seed=TR.seeds,
            method=TR.methods,
        ),
    output:
        csv=report(
            f"{TR_TABLES}/table2.csv",
            caption="../report/table2.rst",
            category=TR_CATEGORY,
            labels={"result": "Table 2", "kind": "table"},
        ),
        md=f"{TR_TABLES}/table2.md",
    log:
        f"logs/tables/{TASK}/table2.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=1000,
    script:
        JOB


rule appendix_c:
    input:
        metrics=expand(f"{AC_DIR}/seed{{seed}}/metrics.json", seed=AC.seeds),
        alpha=expand(f"{AC_DIR}/seed{{seed}}/alpha.csv", seed=AC.seeds),
    output:
        accuracy=f"{TR_TABLES}/appendix_c.csv",
        figure3_data=f"{TR_TABLES}/figure3.csv",
        figure3=report(
            multiext(f"{AC_FIGURES}/figure3", ".png", ".pdf"),
            caption="../report/figure3.rst",
            category=AC_CATEGORY,
            labels={"result": "Figure 3", "kind": "figure"},
        ),
        figure4=report(
            multiext(f"{AC_FIGURES}/figure4", ".png", ".pdf"),
            caption="../report/figure4.rst",
            category=AC_CATEGORY,
            labels={"result": "Figure 4", "kind": "figure"},
        ),
        figure5=report(
            multiext(f"{AC_FIGURES}/figure5", ".png", ".pdf"),
            caption="../report/figure5.rst",
            category=AC_CATEGORY,
            labels={"result": "Figure 5", "kind": "figure"},
        ),
    log:
        f"logs/figures/{TASK_AC}/appendix_c.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=15,
        mem_mb=4000,
    params:
        config=job_config("transfer.appendix_c", "data"),
    script:
        JOB


rule transfer_curves:
    input:
        metrics=expand(
            f"{TR_RUN}/{{method}}/metrics.json",
            nt=TR.n_target,
            seed=TR.seeds,
            method=TR.methods,
        ),
    output:
        csv=f"{TR_TABLES}/curves.csv",
        png=report(
            f"{TR_FIGURES}/curves.png",
            caption="../report/transfer_curves.rst",
            category=TR_CATEGORY,
            labels={"result": "test accuracy per epoch", "kind": "figure"},
        ),
        pdf=f"{TR_FIGURES}/curves.pdf",
    log:
        f"logs/figures/{TASK}/curves.log",
    localrule: True
    conda:
        ENV
    resources:
        runtime=5,
        mem_mb=2000,
    params:
        title=f"Transfer ({TASK}): test accuracy per epoch",
    script:
        JOB


rule transfer_all:
    input:
        rules.table2.output,
        rules.transfer_curves.output,
        rules.appendix_c.output if AC.enabled else [],
