# Cost of one SOSELETO step against one plain step (time and peak memory), per model; and the cost
# plan of the whole run (jobs, steps and hours per rule) priced with it.


rule step_cost:
    output:
        csv=report(
            P.STEP_COST_CSV,
            caption="../report/step_cost.rst",
            category="Beyond the paper, cost",
            labels={"result": "step cost", "kind": "table"},
        ),
    log:
        "logs/benchmarks/step_cost.log",
    conda:
        ENV
    # alone on the machine and on the card: it measures time
    threads: lambda wildcards: all_cores(workflow)
    resources:
        gpu=GPU,
        runtime=30,
        mem_mb=8000,
    params:
        config=job_config(*(f"bench.{k}" for k in STEP_COST_KEYS)),
        device=DEVICE,
    script:
        JOB


# Not part of `all` (run it by name: snakemake share_cost): training jobs side by side on one
# device (python -m soseleto.cost.share); soseleto plan --jobs-per-gpu reads what they gain.
rule share_cost:
    output:
        csv=P.SHARE_COST_CSV,
    log:
        "logs/benchmarks/share_cost.log",
    conda:
        ENV
    # alone on the machine and on the card: it measures time
    threads: lambda wildcards: all_cores(workflow)
    resources:
        gpu=GPU,
        runtime=60,
        mem_mb=16000,
    params:
        config=job_config(*(f"bench.{k}" for k in SHARE_COST_KEYS)),
        device=DEVICE,
    script:
        JOB


rule cost_plan:
    input:
        bench=rules.step_cost.output.csv,
    output:
        csv=report(
            "results/benchmarks/cost_plan.csv",
            caption="../report/cost_plan.rst",
            category="Beyond the paper, cost",
            labels={"result": "cost plan", "kind": "table"},
        ),
        md="results/benchmarks/cost_plan.md",
    log:
        "logs/benchmarks/cost_plan.log",
    localrule: True
    params:
        config=job_config("device", "data", "synthetic", "transfer", "noisy", "bench"),
    run:
        PLAN.write_workflow_plan(
            CFG,
            input.bench,
            output,
            params.config,
            all_cores(workflow),
            gpu_slots(workflow),
        )
