"""The workflow's jobs: one function per Snakemake rule, each a thin call into the package.

Every rule runs ``workflow/scripts/job.py``, which is ``run(snakemake)``: the job's rule name
picks its function here. A rule's ``params.config`` holds exactly the config entries the job reads
(``{dotted path: value}``, built by :func:`soseleto.config.job_params`), so that editing one
section reruns only the jobs that read it, and every entry is rebuilt as a complete typed section
(a missing key is an error, never a silent default). Functions take a :class:`Job`, so tests can
run them without Snakemake.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from soseleto import logs
from soseleto.config import methods as registry
from soseleto.config import section

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a Snakemake job hands to its script, as plain mappings."""

    rule: str
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    wildcards: dict[str, str] = field(default_factory=dict)
    log: str | None = None
    threads: int = 1

    def cfg(self, path: str) -> Any:
        """The typed config entry at ``path`` from ``params.config``."""
        return section(self.params["config"], path)


def all_cores(workflow: Any) -> int:
    """Every core given to Snakemake (a job that times itself claims them all), or 1 when the run
    states none (``--report``, ``--unlock``, ``--lint``), so those commands still parse the workflow."""
    try:
        return int(workflow.cores)
    except Exception:  # snakemake raises WorkflowError when --cores was not given
        return 1


def gpu_slots(workflow: Any) -> int | None:
    """Snakemake's ``--resources gpu=N`` (the training jobs it runs at once), or ``None`` when not given."""
    try:
        value = workflow.global_resources.get("gpu")
        return None if value is None else int(getattr(value, "value", value))
    except Exception:  # an older or newer Snakemake that keeps its resources elsewhere: the plan assumes 1 per card
        return None


def run(smk: Any) -> None:
    """Entry point of ``workflow/scripts/job.py``: run the function of the job's rule."""
    job = Job(smk.rule, dict(smk.input.items()), dict(smk.output.items()), dict(smk.params.items()),
              dict(smk.wildcards.items()), smk.log[0] if smk.log else None, smk.threads)
    run_job(job)


def run_job(job: Job) -> None:
    logs.setup(job.log)
    if job.rule not in JOBS:
        raise ValueError(f"rule {job.rule!r} has no job function; known: {sorted(JOBS)}")
    import torch

    from soseleto.cost.gpus import spread

    torch.set_num_threads(max(1, int(job.threads)))  # CPU runs use the cores Snakemake granted
    if "device" in job.params:  # several cards: jobs that say auto spread over them
        job.params["device"] = spread(job.params["device"])
    JOBS[job.rule](job)


# -- data and the synthetic experiment -------------------------------------------------------------
def dataset(job: Job) -> None:
    from soseleto.data.sets import manifest
    from soseleto.io import provenance, write_json

    data = job.cfg("data")
    write_json(manifest(job.params["dataset"], data), job.output["manifest"], prov=provenance({"data": data}))


def synthetic_seed(job: Job) -> None:
    from soseleto.experiments import synthetic

    synthetic.run_and_save(job.cfg("synthetic"), seed=int(job.wildcards["seed"]), device=job.params["device"],
                           outputs=job.output)


def synthetic_summary(job: Job) -> None:
    from soseleto.report.synthetic import write_summary

    write_summary(list(job.input["metrics"]), job.output["csv"])


def figure1(job: Job) -> None:
    from soseleto.report.synthetic import write_figure1

    cfg = job.cfg("synthetic")
    write_figure1(list(job.input["points"]), list(job.input["histories"]), list(cfg.seeds), threshold=cfg.threshold,
                  outputs=[job.output["png"], job.output["pdf"]])


# -- Table 1 protocol ---------------------------------------------------------------------------------
def method_settings(job: Job, protocol: str) -> tuple[Any, Any, Any]:
    """The settings and options of the job's method (``params.method``, an entry of
    :mod:`soseleto.config.methods`), and the settings of the run it starts from (or ``None``)."""
    entry = registry.get(protocol, job.params["method"])
    options = job.cfg(f"{protocol}.{entry.options}") if entry.options else None
    init = job.cfg(f"{protocol}.{registry.get(protocol, entry.starts_from).settings}") if entry.starts_from else None
    return job.cfg(f"{protocol}.{entry.settings}"), options, init


def noisy_split(job: Job) -> None:
    from soseleto.experiments import noisy

    noisy.write_split(job.cfg("noisy.split"), job.cfg("data"), noise=float(job.wildcards["noise"]), outputs=job.output)


def _noisy_run_inputs(job: Job) -> dict[str, Any]:
    """What every training job of the noisy protocol reads besides its method's settings (the
    rules' ``methods.RUN_PARAMS["noisy"]``), its wildcards and its split, as keyword arguments."""
    return {"split_cfg": job.cfg("noisy.split"), "model": job.cfg("noisy.model"), "data": job.cfg("data"),
            "weight_init": job.cfg("noisy.weight_init"), "input_scale": job.cfg("noisy.input_scale"),
            "noise": float(job.wildcards["noise"]), "seed": int(job.wildcards["seed"]), "device": job.params["device"],
            "split_csv": job.input["split"]}


def noisy_run(job: Job) -> None:
    from soseleto.experiments import noisy

    settings, options, init = method_settings(job, "noisy")
    noisy.run_method(job.params["method"], settings, **_noisy_run_inputs(job), outputs=job.output, options=options,
                     init=None if init is None else (job.input["init"], init))


def noisy_cleanlab(job: Job) -> None:
    from soseleto.experiments.detection import run_cleanlab

    run_cleanlab(job.cfg("noisy.baseline"), folds=job.cfg("noisy.cleanlab_folds"), **_noisy_run_inputs(job),
                 scores_csv=job.output["scores"])


def table1(job: Job) -> None:
    from soseleto.report.table1 import write_table1

    write_table1(list(job.input["metrics"]), job.output["csv"], job.output["md"],
                 side_by_side=job.rule == "table1_peers")


def figure2(job: Job) -> None:
    from soseleto.report.table1 import write_figure2

    write_figure2(list(job.input["alpha"]), job.params["noises"], out_csv=job.output["csv"],
                  outputs=[job.output["png"], job.output["pdf"]])


def confusion_figure(job: Job) -> None:
    from soseleto.report.table1 import write_confusion_figure

    write_confusion_figure(list(job.input["confusion"]), list(job.cfg("noisy.noise_levels")),
                           outputs=[job.output["png"], job.output["pdf"]])


def noisy_curves(job: Job) -> None:
    from soseleto.report.history import write_curves

    write_curves(list(job.input["metrics"]), panel="noise", panel_label="noise", title=job.params["title"],
                 out_csv=job.output["csv"], outputs=[job.output["png"], job.output["pdf"]])


def noisy_alpha_histograms(job: Job) -> None:
    from soseleto.report.table1 import write_alpha_histograms

    write_alpha_histograms(list(job.input["alpha"]), job.params["noises"], data=job.params["data"],
                           outputs=[job.output["png"], job.output["pdf"]])


def label_errors(job: Job) -> None:
    from soseleto.report.label_errors import write_label_errors

    write_label_errors(job.params["runs"], out_csv=job.output["csv"], out_md=job.output["md"],
                       figures=[job.output["png"], job.output["pdf"]])


# -- Table 2 protocol -----------------------------------------------------------------------------------
def _source_side(job: Job, appendix_c: bool):
    """The transfer source, with Appendix C's source classes for an Appendix C job."""
    side = job.cfg("transfer.source")
    return dataclasses.replace(side, classes=job.cfg("transfer.appendix_c").source_classes) if appendix_c else side


def transfer_source_split(job: Job) -> None:
    from soseleto.experiments import transfer

    transfer.write_source_split(_source_side(job, bool(job.params.get("appendix_c"))), job.cfg("data"),
                                job.output["split"], target=job.cfg("transfer.target"),
                                test_per_class=job.cfg("transfer.test_per_class"))


def transfer_target_split(job: Job) -> None:
    from soseleto.experiments import transfer

    transfer.write_target_split(job.cfg("transfer.target"), job.cfg("data"), n_target=int(job.wildcards["nt"]),
                                seed=int(job.wildcards["seed"]), outputs=job.output,
                                test_per_class=job.cfg("transfer.test_per_class"))


def transfer_run(job: Job) -> None:
    from soseleto.experiments import transfer

    method = job.params["method"]
    appendix_c = method == "appendix_c"
    task = transfer.Task(_source_side(job, appendix_c), job.cfg("transfer.target"), job.cfg("transfer.image_size"),
                         job.cfg("transfer.model"), job.cfg("transfer.weight_init"))
    n_target = job.cfg("transfer.appendix_c").n_target if appendix_c else (
        int(job.wildcards["nt"]) if "nt" in job.wildcards else None)
    settings, options, init = method_settings(job, "transfer")
    transfer.run_and_save(transfer.TransferRun(
        method, settings, task, job.cfg("data"), int(job.wildcards["seed"]), job.params["device"],
        dict(job.input), job.output, n_target=n_target, init=init, options=options))


def table2(job: Job) -> None:
    from soseleto.report.table2 import write_table2

    write_table2(list(job.input["metrics"]), job.output["csv"], job.output["md"])


def transfer_curves(job: Job) -> None:
    from soseleto.report.history import write_curves

    write_curves(list(job.input["metrics"]), panel="n_target", panel_label="n_t =", title=job.params["title"],
                 out_csv=job.output["csv"], outputs=[job.output["png"], job.output["pdf"]])


def appendix_c(job: Job) -> None:
    from soseleto.config import to_dict
    from soseleto.report.table2 import write_appendix_c

    ac = job.cfg("transfer.appendix_c")
    out = job.output
    write_appendix_c(list(job.input["metrics"]), list(job.input["alpha"]), list(ac.seeds), to_dict(job.cfg("data")),
                     threshold=ac.threshold, bad_quantile=ac.bad_quantile, grid=ac.grid, lowest=ac.lowest,
                     outputs={"accuracy": out["accuracy"], "figure3_data": out["figure3_data"],
                              "figure3": list(out["figure3"]), "figure4": list(out["figure4"]),
                              "figure5": list(out["figure5"])})


# -- benchmark ----------------------------------------------------------------------------------------------
def _bench(job: Job, keys: tuple[str, ...]):
    """The ``bench`` section with the keys the job reads (``params.config``); the others, which the
    job does not use, keep their defaults."""
    from soseleto.config import BenchConfig

    return dataclasses.replace(BenchConfig(), **{k: job.cfg(f"bench.{k}") for k in keys})


def step_cost(job: Job) -> None:
    from soseleto.cost import bench

    bench.run(_bench(job, STEP_COST_KEYS), job.params["device"], out=job.output["csv"])


def share_cost(job: Job) -> None:
    from soseleto.cost import share

    share.run(_bench(job, SHARE_COST_KEYS), job.params["device"], out=job.output["csv"])


STEP_COST_KEYS = ("models", "reps", "quick", "threads", "load")  # what each benchmark rule reads of `bench`
SHARE_COST_KEYS = ("models", "share_jobs", "share_seconds")


JOBS: dict[str, Callable[[Job], None]] = {
    "dataset": dataset, "synthetic_seed": synthetic_seed, "synthetic_summary": synthetic_summary, "figure1": figure1,
    "noisy_split": noisy_split, "noisy_run": noisy_run, "noisy_run_alpha": noisy_run, "noisy_run_scores": noisy_run,
    "noisy_cleanlab": noisy_cleanlab, "table1": table1,
    "table1_peers": table1, "figure2": figure2, "confusion_figure": confusion_figure, "label_errors": label_errors,
    "noisy_curves": noisy_curves, "noisy_alpha_histograms": noisy_alpha_histograms, "transfer_curves": transfer_curves,
    "transfer_source_split": transfer_source_split, "appendix_c_source_split": transfer_source_split,
    "transfer_target_split": transfer_target_split, "transfer_pretrain": transfer_run, "transfer_run": transfer_run,
    "transfer_run_alpha": transfer_run, "appendix_c_run": transfer_run, "table2": table2, "appendix_c": appendix_c,
    "step_cost": step_cost, "share_cost": share_cost,
}
