# Issue 6: cost of one SOSELETO step against one plain step (time and peak memory), per model.


rule step_cost:
    output:
        report(
            "results/benchmarks/step_cost.csv",
            caption="../report/step_cost.rst",
            category="Beyond the paper",
            labels={"result": "step cost", "kind": "table"},
        ),
    params:
        bench=config["bench"],
        device=config["device"],
    log:
        "logs/benchmarks/step_cost.log",
    # alone on the machine and on the card: it measures time
    threads: workflow.cores
    resources:
        gpu=GPU,
        runtime=30,
        mem_mb=8000,
    conda:
        ENV
    script:
        "../scripts/step_cost.py"
