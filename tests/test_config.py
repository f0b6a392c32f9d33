"""Typed config sections (:mod:`soseleto.config`): building them from mappings, the field rules
and their messages, job params, and the JSON schema generated from the same rules."""

import dataclasses
import subprocess
import sys

import pytest

from soseleto.config import (DataConfig, NoisyConfig, PairedConfig, PeerConfig, PlainConfig, Schedule, SoseletoConfig,
                             SyntheticConfig, TransferConfig, WorkflowConfig, from_mapping, job_params, json_schema,
                             section, to_dict, workflow_config)


def test_from_mapping_builds_nested_dataclasses():
    cfg = from_mapping(SyntheticConfig, {"n_source": 10, "n_noisy": 2, "trainer": {"lr_p": 0.5, "epochs": 3}})
    assert isinstance(cfg.trainer, SoseletoConfig)
    assert cfg.trainer.lr_p == 0.5 and cfg.trainer.epochs == 3 and cfg.n_source == 10
    assert cfg.trainer.lr_alpha == SyntheticConfig().trainer.lr_alpha  # keys not given keep the parent's default


@pytest.mark.parametrize(
    "data,match",
    [
        ({"lr_p": -1.0}, r"lr_p=-1\.0"),
        ({"momentum": 1.0}, r"momentum=1\.0"),
        ({"alpha_init": 2.0}, r"alpha_init=2\.0"),
        ({"alpha_max": 0.5, "alpha_min": 0.5, "alpha_init": 0.5}, r"alpha_max=0\.5 .*> alpha_min=0\.5"),
        ({"loss_scale": "sum"}, r"loss_scale='sum'"),
        ({"alpha_grad": "theta"}, r"alpha_grad='theta'"),
        ({"epochs": 0}, r"epochs=0"),
        ({"epochs": 2.5}, r"epochs=2\.5 is invalid: expected an integer"),
        ({"source_batch": True}, r"source_batch=True is invalid: expected an integer"),
        ({"shared_classifier": 1}, r"shared_classifier=1 is invalid: expected a boolean"),
        ({"lr_p": "fast"}, r"lr_p='fast' is invalid: expected a number"),
        ({"batch": 3}, r"unknown config key\(s\) batch"),
    ],
)
def test_bad_trainer_values_name_the_key(data, match):
    with pytest.raises(ValueError, match=match):
        from_mapping(SoseletoConfig, data)


def test_integers_are_accepted_as_numbers():
    assert from_mapping(SoseletoConfig, {"lr_p": 1, "lr_alpha": 200}).lr_p == 1.0
    assert isinstance(from_mapping(SoseletoConfig, {"lr_p": 1}).lr_p, float)


@pytest.mark.parametrize("key", ["lr_alpha", "alpha_init", "alpha_min", "alpha_max", "loss_scale", "shared_classifier",
                                 "source_batch", "target_batch"])
def test_plain_configs_take_no_alpha_or_paired_keys(key):
    with pytest.raises(ValueError, match=rf"unknown config key\(s\) {key}"):
        from_mapping(PlainConfig, {key: SoseletoConfig().__getattribute__(key)})


def test_paired_configs_take_no_alpha_keys():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) lr_alpha"):
        from_mapping(PairedConfig, {"lr_alpha": 1.0})


def test_schedules_of_the_training_sections():
    assert PlainConfig(batch=16, epochs=3, log_every=2, checkpoint_every=4).schedule == Schedule(3, 16, None, 2, 4)
    assert PairedConfig(source_batch=16, target_batch=8, epochs=3).schedule == Schedule(3, 16, 8, 1, 1)
    assert SoseletoConfig(source_batch=16, target_batch=8, epochs=2).schedule == Schedule(2, 16, 8, 1, 1)


def test_nested_error_carries_the_path():
    with pytest.raises(ValueError, match=r"trainer\.alpha_max"):
        from_mapping(SyntheticConfig, {"trainer": {"alpha_max": -1.0}})
    with pytest.raises(ValueError, match=r"synthetic\.trainer\.lr_pp"):
        from_mapping(SyntheticConfig, {"seeds": [0], "trainer": {"lr_pp": 0.1}}, where="synthetic.")
    with pytest.raises(ValueError, match=r"synthetic\.n_noisy=20 is invalid: expected in \[0, n_source=10\]"):
        from_mapping(SyntheticConfig, {"n_source": 10, "n_noisy": 20}, where="synthetic.")
    with pytest.raises(ValueError, match=r"trainer=3 is invalid"):
        from_mapping(SyntheticConfig, {"trainer": 3})


def test_complete_mappings_need_every_key():
    with pytest.raises(ValueError, match=r"missing config key\(s\) noisy\.baseline\.epochs"):
        full = {k: v for k, v in to_dict(PlainConfig()).items() if k != "epochs"}
        from_mapping(PlainConfig, full, where="noisy.baseline.", complete=True)
    assert from_mapping(PlainConfig, to_dict(PlainConfig()), complete=True) == PlainConfig()
    cfg = WorkflowConfig()
    assert workflow_config(to_dict(cfg)) == cfg  # the whole config round-trips through plain data
    partial = to_dict(cfg)
    del partial["noisy"]["trainer"]["lr_alpha"]
    with pytest.raises(ValueError, match=r"noisy\.trainer\.lr_alpha"):
        workflow_config(partial)


def test_lists_become_tuples_and_their_rules_apply_to_every_item():
    cfg = from_mapping(NoisyConfig, {"seeds": [0, 1], "noise_levels": [0.3]})
    assert cfg.seeds == (0, 1) and cfg.noise_levels == (0.3,)
    assert to_dict(cfg)["seeds"] == [0, 1]
    with pytest.raises(ValueError, match=r"noise_levels=\[0\.3, 1\.2\] is invalid: expected < 1 for every item"):
        from_mapping(NoisyConfig, {"noise_levels": [0.3, 1.2]})
    with pytest.raises(ValueError, match=r"seeds=\[\] is invalid: expected a list of at least 1"):
        from_mapping(NoisyConfig, {"seeds": []})
    with pytest.raises(ValueError, match=r"seeds=\[1, 1\] is invalid: expected a list without repeats"):
        from_mapping(NoisyConfig, {"seeds": [1, 1]})
    with pytest.raises(ValueError, match=r"seeds=3 is invalid: expected a list"):
        from_mapping(NoisyConfig, {"seeds": 3})


def test_noisy_config_errors_name_the_key():
    def build(**override):
        return from_mapping(NoisyConfig, override, where="noisy.")

    with pytest.raises(ValueError, match="shared_classifier"):
        build(trainer={"shared_classifier": False})
    with pytest.raises(ValueError, match="methods"):
        build(methods=["soseleto", "coteaching"])
    with pytest.raises(ValueError, match=r"noisy\.baseline\.lr_pp"):
        build(baseline={"lr_pp": 1})
    with pytest.raises(ValueError, match=r"noisy\.baseline\.lr_alpha"):
        build(baseline={"lr_alpha": 1})  # a plain run has no alpha
    with pytest.raises(ValueError, match=r"noisy\.peers\.noise_trace=-1"):
        build(peers={"noise_trace": -1})
    with pytest.raises(ValueError, match=r"noisy\.peer_trainer\.epochs=0"):
        build(peer_trainer={"epochs": 0})
    with pytest.raises(ValueError, match=r"noisy\.cleanlab_folds=1"):
        build(cleanlab_folds=1)
    with pytest.raises(ValueError, match=r"noisy\.split\.test_per_class=None .*has no test split"):
        build(split={"dataset": "data/mine.npz"})
    assert build(split={"dataset": "data/mine.npz", "test_per_class": 10}).split.test_per_class == 10


def test_peer_settings_are_their_own_sections():
    cfg = from_mapping(NoisyConfig, {"peer_trainer": {"epochs": 3}, "baseline": {"epochs": 7}})
    assert cfg.peer_trainer.epochs == 3 and cfg.peer_trainer.lr_p == PairedConfig().lr_p  # not the baseline's
    assert cfg.peers == PeerConfig()


TINY_TRANSFER = {
    "soseleto": {"lr_p": 0.01, "source_batch": 32, "target_batch": 10, "epochs": 1, "shared_classifier": False},
    "two_stage": {"lr_p": 0.01, "source_batch": 32, "target_batch": 10, "epochs": 1},
    "target_only": {"lr_p": 0.01, "batch": 10, "epochs": 3},
}


@pytest.mark.parametrize(
    "override,match",
    [
        ({"n_target": [21]}, r"transfer\.n_target=21"),
        ({"appendix_c": {"n_target": 7}}, r"transfer\.appendix_c\.n_target=7"),
        ({"soseleto": {"shared_classifier": True}}, r"transfer\.soseleto\.shared_classifier"),
        ({"two_stage": {"shared_classifier": False}}, r"transfer\.two_stage\.shared_classifier"),
        ({"methods": ["soseleto", "magic"]}, r"transfer\.methods"),
        ({"target": {"classes": [5, 5]}}, r"transfer\.target\.classes=\[5, 5\]"),
        ({"target": {"classes": [5]}}, r"transfer\.target\.classes=\[5\] is invalid: expected a list of at least 2"),
        ({"target": {"dataset": "mine.npz"}}, r"transfer\.test_per_class=None is invalid.*two_stage is run on the file"),
        ({"pretrain": {"source_batch": 32}}, r"transfer\.pretrain\.source_batch"),
    ],
)
def test_bad_transfer_config_names_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        from_mapping(TransferConfig, {**TINY_TRANSFER, **override}, where="transfer.")


def test_transfer_config_keeps_seed_lists_and_nested_sides():
    cfg = from_mapping(TransferConfig, {**TINY_TRANSFER, "seeds": [0, 1], "appendix_c": {"seeds": [0], "grid": 4}})
    assert isinstance(cfg, TransferConfig) and cfg.appendix_c.grid == 4 and cfg.source.classes == (0, 1, 2, 3, 4)
    assert cfg.seeds == (0, 1) and cfg.appendix_c.seeds == (0,)
    assert cfg == dataclasses.replace(from_mapping(TransferConfig, {**TINY_TRANSFER, "appendix_c": {"grid": 4}}),
                                      seeds=(0, 1))
    # a file as the target is fine when two-stage SOSELETO is not run
    assert from_mapping(TransferConfig, {"methods": ["soseleto"], "target": {"dataset": "mine.npz"}}).target.dataset \
        == "mine.npz"


def test_job_params_hold_exactly_the_entries_a_job_reads_and_section_rebuilds_them():
    cfg = WorkflowConfig()
    params = job_params(cfg, "noisy.peer_trainer", "noisy.peers", "noisy.model", "data")
    assert set(params) == {"noisy.peer_trainer", "noisy.peers", "noisy.model", "data"}
    assert params["noisy.model"] == "auto" and params["data"]["source"] == "torchvision"
    assert section(params, "noisy.peer_trainer") == cfg.noisy.peer_trainer
    assert section(params, "data") == cfg.data and section(params, "noisy.model") == "auto"
    with pytest.raises(ValueError, match=r"job params lack the config entry 'noisy\.trainer'"):
        section(params, "noisy.trainer")
    with pytest.raises(ValueError, match=r"'noisy\.bogus' is not a config entry"):
        section({"noisy.bogus": 1}, "noisy.bogus")
    broken = {**params, "noisy.peer_trainer": {k: v for k, v in params["noisy.peer_trainer"].items() if k != "lr_p"}}
    with pytest.raises(ValueError, match=r"missing config key\(s\) noisy\.peer_trainer\.lr_p"):
        section(broken, "noisy.peer_trainer")
    with pytest.raises(ValueError, match=r"noisy\.model='vgg'"):
        section({"noisy.model": "vgg"}, "noisy.model")


def test_json_schema_states_the_field_rules():
    schema = json_schema()
    assert schema["required"] == [f.name for f in dataclasses.fields(WorkflowConfig)]
    trainer = schema["$defs"]["SoseletoConfig"]
    assert trainer["additionalProperties"] is False and "lr_alpha" in trainer["required"]
    assert trainer["properties"]["lr_p"] == {"description": trainer["properties"]["lr_p"]["description"],
                                             "type": "number", "exclusiveMinimum": 0}
    assert trainer["properties"]["momentum"]["exclusiveMaximum"] == 1
    assert trainer["properties"]["loss_scale"]["enum"] == ["batch_mean", "dataset"]
    noisy = schema["$defs"]["NoisyConfig"]["properties"]
    assert noisy["seeds"]["type"] == "array" and noisy["seeds"]["minItems"] == 1 and noisy["seeds"]["uniqueItems"]
    assert noisy["noise_levels"]["items"] == {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    assert schema["$defs"]["PeerConfig"]["properties"]["glc_noisy_epochs"]["type"] == ["integer", "null"]
    assert schema["properties"]["device"]["pattern"].startswith("^(auto|cpu")
    assert "lr_alpha" not in schema["$defs"]["PlainConfig"]["properties"]


def test_config_module_imports_neither_torch_nor_numpy():
    code = ("import sys, soseleto.config, soseleto.paths, soseleto.cli\n"
            "bad = [m for m in ('torch', 'numpy', 'pandas') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_data_config_rules():
    with pytest.raises(ValueError, match=r"source='web'"):
        DataConfig(source="web")
    with pytest.raises(ValueError, match=r"generated_train=5"):
        DataConfig(generated_train=5)


def test_a_partial_nested_section_keeps_the_parent_default():
    cfg = from_mapping(SyntheticConfig, {"trainer": {"epochs": 3}})
    assert cfg.trainer == dataclasses.replace(SyntheticConfig().trainer, epochs=3)  # the paper's synthetic settings
    assert from_mapping(TransferConfig, {"soseleto": {"epochs": 1}}).soseleto.shared_classifier is False


def test_fit_config_states_fit_defaults_once_and_checks_the_mode():
    from soseleto.cli import build_parser, fit_config
    from soseleto.config import FitConfig

    args = build_parser().parse_args(["fit", "--mode", "transfer", "--source", "s.npz", "--target", "t.npz",
                                      "--out", "o", "--size", "16"])
    cfg = fit_config(args)
    assert cfg.trainer.shared_classifier is False and cfg.size == (16, 16)
    defaults = FitConfig(source="s.npz", target="t.npz", out="o", mode="transfer", size=(16, 16),
                         trainer=cfg.trainer)
    assert cfg == defaults  # every flag's default is the dataclass's
    assert defaults.flag_threshold == 0.1 and defaults.workers == 2 and defaults.data_dir == "data"
    with pytest.raises(ValueError, match="trainer.shared_classifier=True is invalid: expected False in transfer mode"):
        FitConfig(source="s", target="t", out="o", mode="transfer")
    with pytest.raises(ValueError, match="source='' is invalid"):
        FitConfig(target="t", out="o")
