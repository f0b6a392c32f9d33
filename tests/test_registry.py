"""The registry of methods (:mod:`soseleto.config.methods`): every entry is consistent with the
config and importable, and a method added as one entry flows through the job, the tables, the
label-error detection and the cost plan without touching any other file."""

import re

import numpy as np
import pandas as pd
import pytest

from soseleto import jobs
from soseleto.config import (DataConfig, NoisyConfig, NoisySplitConfig, PairedConfig, PeerConfig, PlainConfig,
                             WorkflowConfig, from_mapping, job_params, to_dict)
from soseleto.config import methods as registry
from soseleto.core.loop import RunResult
from soseleto.cost import work
from soseleto.cost import plan
from soseleto.methods.plain import train_plain
from soseleto.paths import detection_runs
from soseleto.report.label_errors import write_label_errors
from soseleto.report.table1 import write_table1


@pytest.mark.parametrize("protocol", registry.PROTOCOLS)
def test_every_entry_names_config_it_has_and_a_function_that_exists(protocol):
    cfg = WorkflowConfig()
    for m in registry.methods(protocol):
        for path in m.config_paths():
            assert job_params(cfg, path), (m.name, path)  # raises AttributeError for a missing entry
        for _, epochs in m.passes:
            assert epochs is None or job_params(cfg, epochs), (m.name, epochs)
        assert callable(m.runner()), m.name
    assert registry.choices(protocol)  # what a config may list


def test_the_rules_patterns_split_the_methods_by_the_files_they_write():
    for m in registry.methods("noisy"):
        kinds = [s for s in (None, "alpha", "scores") if re.fullmatch(registry.pattern("noisy", scores=s), m.name)]
        assert kinds == [m.scores], m.name
    assert not re.fullmatch(registry.pattern("noisy", scores="alpha"), "soseleto_frozenx")


def test_bad_entries_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("noisy", "soseleto"))
    with pytest.raises(ValueError, match="starts from 'nothing'"):
        registry.register(registry.Method("x", "noisy", "x", "trainer", "m:f", starts_from="nothing"))
    with pytest.raises(ValueError, match="needs per-sample scores"):
        registry.Method("x", "noisy", "x", "trainer", "m:f", threshold=0.5)
    with pytest.raises(ValueError, match="not 'module:function'"):
        registry.Method("x", "noisy", "x", "trainer", "m.f")
    with pytest.raises(ValueError, match="not a noisy method; known"):
        registry.get("noisy", "x")
    with pytest.raises(ValueError, match=r"noisy\.methods=\['nothing'\] is invalid"):
        from_mapping(WorkflowConfig, {"noisy": {"methods": ["nothing"]}})


# -- a method added as one entry ---------------------------------------------------------------------------
def run_dummy(features, head, source, target, cfg, options, **common):
    """Plain SGD on the source; its score of a sample: 1 for even source positions, 0 for odd ones."""
    history = train_plain(features, head, source, PlainConfig(lr_p=cfg.lr_p, batch=cfg.source_batch,
                                                              epochs=cfg.epochs), **common)
    return RunResult(history, (np.arange(len(source)) % 2 == 0).astype(float))


@pytest.fixture
def dummy():
    entry = registry.register(registry.Method(
        "dummy", "noisy", "a dummy method", "peer_trainer", f"{__name__}:run_dummy", options="peers",
        scores="scores", threshold=0.5, reference="this test"))
    yield entry
    registry.unregister("noisy", "dummy")


def test_a_method_added_as_one_entry_reaches_the_tables_and_the_plan(dummy, tmp_path):
    data = DataConfig(source="generated", dir="unused", generated_train=120, generated_test=40)
    nz = NoisyConfig(seeds=(0,), noise_levels=(0.4,), methods=("noisy_baseline", "dummy"), model="mlp",
                     split=NoisySplitConfig(dataset="mnist", n_target=40),
                     peer_trainer=PairedConfig(lr_p=0.05, source_batch=40, target_batch=10, epochs=2),
                     cleanlab_folds=0, threads=1)
    cfg = WorkflowConfig(data=data, noisy=nz, device="cpu")
    assert cfg.noisy.methods == ("noisy_baseline", "dummy")  # the config accepts it

    # the workflow: the rule that writes scores.csv runs it, and the job reads the entries it names
    rule = work.NOISY_RULES[dummy.scores]
    assert re.fullmatch(registry.pattern("noisy", scores="scores"), "dummy")
    split = {k: str(tmp_path / f) for k, f in (("split", "split.csv"), ("confusion", "c.csv"), ("info", "s.json"))}
    jobs.run_job(jobs.Job("noisy_split", output=split, params={"config": job_params(cfg, "noisy.split", "data")},
                          wildcards={"noise": "0.4"}, log=str(tmp_path / "split.log")))
    run = tmp_path / "dummy"
    outputs = {k: str(run / f) for k, f in (("metrics", "metrics.json"), ("checkpoint", "checkpoint.pt"),
                                            ("scores", "scores.csv"))}
    params = {"method": "dummy", "device": "cpu",
              "config": job_params(cfg, *dummy.config_paths(), *registry.RUN_PARAMS["noisy"])}
    jobs.run_job(jobs.Job(rule, input={"split": split["split"]}, output=outputs, params=params,
                          wildcards={"noise": "0.4", "seed": "0"}, log=str(tmp_path / "dummy.log")))
    scores = pd.read_csv(outputs["scores"])
    assert scores.score.tolist() == [float(i % 2 == 0) for i in range(len(scores))]

    # Table 1 with every method, and label-error detection at the entry's threshold
    table = write_table1([outputs["metrics"]], str(tmp_path / "t.csv"), str(tmp_path / "t.md"), side_by_side=True)
    assert table.method.tolist() == ["dummy"] and "a dummy method (`dummy`)" in (tmp_path / "t.md").read_text()
    runs = detection_runs(nz.methods, ["0.4"], nz.seeds, run=str(tmp_path / "{method}"), cleanlab=False)
    assert [r["method"] for r in runs] == ["dummy"]
    errors = write_label_errors(runs, out_csv=str(tmp_path / "e.csv"), out_md=str(tmp_path / "e.md"),
                                figures=[str(tmp_path / "e.png")])
    assert errors.threshold.tolist() == [0.5] and "a dummy method score < 0.5" in (tmp_path / "e.md").read_text()

    # the cost plan counts its jobs, steps over the source
    result = plan.plan(cfg, device="cpu", cores=2, results=tmp_path)
    (row,) = [r for r in result["rows"] if r["rule"] == f"{rule} (dummy)"]
    n_source = 120 - 40
    assert row["jobs"] == 1 and row["steps_per_job"] == str(2 * -(-n_source // 40))
    assert to_dict(PeerConfig()) == params["config"]["noisy.peers"]
