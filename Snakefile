# soseleto: rebuild the tables and figures of the SOSELETO paper.
#   snakemake --cores all              (the whole paper; see README.md)
#   snakemake --cores 2 results/synthetic/summary.csv
#   snakemake --cores 2 --configfile config/smoke.yaml     (every rule on generated stand-ins)
#   snakemake --cores 2 --configfile config/digits.yaml    (both protocols on real MNIST digits)
import os

from snakemake.utils import min_version, validate

min_version("8.0")


# The paper's settings; `--configfile other.yaml` overrides them key by key.
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config/config.yaml")


configfile: DEFAULT_CONFIG


validate(config, schema="workflow/schemas/config.schema.yaml")


# snakemake --report results/report.html: this page, then every output wrapped in report().
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/noisy.smk"
include: "workflow/rules/peers.smk"


# Before the first job: the jobs to run, their SGD steps and projected hours (soseleto plan).
onstart:
    PLAN.show_pending(
        CFG, workflow.dag, cores=all_cores(workflow), gpu_slots=gpu_slots(workflow)
    )


# After the last job: where the tables, figures and the report are.
onsuccess:
    print(
        P.where_results(
            [
                "results/synthetic",
                "results/figures",
                NOISY_TABLES,
                NOISY_FIGURES,
                TR_TABLES,
                TR_FIGURES,
                AC_FIGURES,
                "results/benchmarks",
            ],
            [
                os.path.relpath(str(f))
                for f in workflow.configfiles
                if os.path.abspath(str(f)) != DEFAULT_CONFIG
            ],
        )
    )


# (under `snakemake --report`: only the results made so far, see `made` in workflow/rules/common.smk)
rule all:
    input:
        made(
            rules.step_cost.output,
            rules.cost_plan.output,
            rules.synthetic_all.input,
            rules.transfer_all.input,
            rules.noisy_all.input,
            rules.peers_all.input,
        ),
