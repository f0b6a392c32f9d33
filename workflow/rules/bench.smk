# Cost of one SOSELETO step against one plain step (time and peak memory), per model.


rule step_cost:
    output:
        csv=report(
            "results/benchmarks/step_cost.csv",
            caption="../report/step_cost.rst",
            category="Beyond the paper",
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
        config=job_config("bench"),
        device=DEVICE,
    script:
        JOB
