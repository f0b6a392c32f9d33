# Cost of one SOSELETO step against one plain step (time and peak memory), per model; and the cost
# plan of the whole run (jobs, steps and hours per rule) priced with it. File names say what was
# measured (device, quick, threads) or planned (the config's data sets): soseleto/paths.py.

BENCH_DEVICE = PLAN.default_device(DEVICE)  # cpu or cuda: what the plan prices
STEP_COST_CSV, SHARE_COST_CSV = PLAN.benchmarks(CFG, BENCH_DEVICE)


rule step_cost:
    output:
        csv=report(
            STEP_COST_CSV,
            caption="../report/step_cost.rst",
            category="Beyond the paper, cost",
            labels={"result": "step cost", "kind": "table"},
        ),
    log:
        log_of(STEP_COST_CSV),
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
        csv=SHARE_COST_CSV,
    log:
        log_of(SHARE_COST_CSV),
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
            P.cost_plan(CFG, ".csv"),
            caption="../report/cost_plan.rst",
            category="Beyond the paper, cost",
            labels={"result": "cost plan", "kind": "table"},
        ),
        md=P.cost_plan(CFG, ".md"),
    log:
        log_of(P.cost_plan(CFG, ".log")),
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
