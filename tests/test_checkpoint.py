import os

import numpy as np
import pytest
import torch

from soseleto.config import DataConfig, PlainConfig
from soseleto.core.checkpoint import (
    check_plain,
    discard,
    identity,
    load_checkpoint,
    publish,
    resume_path,
    safe_load,
    save_checkpoint,
)


def test_roundtrip_and_config_check(tmp_path):
    path = tmp_path / "ck.pt"
    cfg = {"trainer": {"lr_p": 0.1, "epochs": 3}, "seed": 0}
    save_checkpoint({"alpha": torch.arange(3.0), "epoch": 2}, path, config=cfg)
    state = load_checkpoint(path, config=cfg)
    assert state["epoch"] == 2 and torch.equal(state["alpha"], torch.arange(3.0))
    other = {"trainer": {"lr_p": 0.2, "epochs": 3}, "seed": 0}
    with pytest.raises(ValueError, match=r"different config \(trainer.lr_p: 0.1 vs 0.2\)"):
        load_checkpoint(path, config=other)


def test_every_differing_key_is_named(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({}, path, config={"a": 1, "b": {"c": 2}, "gone": 0})
    with pytest.raises(ValueError, match=r"a: 1 vs 3, b\.c: 2 vs 4, gone: 0 vs None, new: None vs 5"):
        load_checkpoint(path, config={"a": 3, "b": {"c": 4}, "new": 5})
    save_checkpoint({}, path, config="x")
    with pytest.raises(ValueError, match=r"config: 'x' vs 'y'"):
        load_checkpoint(path, config="y")


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"x": torch.zeros(1000)}, path, config={})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="ck.pt.*could not be read"):
        load_checkpoint(path, config={})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", config={})


def test_identity_is_plain_data_of_the_settings_seed_and_context():
    ident = identity("noisy_baseline", PlainConfig(epochs=3), seed=2, data=DataConfig(source="generated"),
                     noise=0.4, peers=None, sides=(DataConfig(), {"k": DataConfig()}))
    assert ident["method"] == "noisy_baseline" and ident["seed"] == 2 and ident["noise"] == 0.4
    assert ident["settings"]["epochs"] == 3 and ident["data"]["source"] == "generated" and ident["peers"] is None
    assert ident["sides"][0]["dir"] == "data" and ident["sides"][1]["k"]["source"] == "torchvision"
    assert identity("noisy_baseline", {"lr_p": 0.1}, seed=0)["settings"] == {"lr_p": 0.1}
    assert ident == identity("noisy_baseline", PlainConfig(epochs=3), seed=2, data=DataConfig(source="generated"),
                             noise=0.4, peers=None, sides=[DataConfig(), {"k": DataConfig()}])
    assert ident != identity("noisy_baseline", PlainConfig(epochs=4), seed=2, data=DataConfig(source="generated"),
                             noise=0.4, peers=None, sides=[DataConfig(), {"k": DataConfig()}])


def test_identity_survives_a_save_and_load(tmp_path):
    ident = identity("soseleto", PlainConfig(), seed=0, data=DataConfig())
    save_checkpoint({"epoch": 1}, tmp_path / "ck.pt", config=ident)
    assert load_checkpoint(tmp_path / "ck.pt", config=identity("soseleto", PlainConfig(), seed=0, data=DataConfig()))


def test_publish_moves_the_resume_file_and_removes_those_of_the_parts(tmp_path):
    final = tmp_path / "run" / "model.ckpt"
    resume = resume_path(final)
    assert resume == str(final) + ".resume"
    save_checkpoint({"epoch": 3}, resume, config={"k": 1})
    save_checkpoint({"epoch": 1}, resume + ".stage1", config={"k": 1})  # e.g. GLC's first stage
    (final.parent / "metrics.json").write_text("{}")
    publish(resume, final)
    assert load_checkpoint(final, config={"k": 1})["epoch"] == 3
    assert sorted(p.name for p in final.parent.iterdir()) == ["metrics.json", "model.ckpt"]


def test_discard_removes_the_resume_files_of_one_output_only(tmp_path):
    for name in ("scores.csv.resume.fold0", "scores.csv.resume.fold1", "other.csv.resume.fold0", "scores.csv"):
        (tmp_path / name).write_text("x")
    discard(resume_path(tmp_path / "scores.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.csv.resume.fold0", "scores.csv"]
    discard(resume_path(tmp_path / "missing.csv"))  # nothing to remove is fine


class _RunsACommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload,refused", [(_RunsACommand(), "GLOBAL posix.system"), (len, "GLOBAL len"),
                                             (np.zeros(3), "GLOBAL numpy")])
def test_a_file_holding_code_or_objects_is_refused_without_running_it(tmp_path, capfd, payload, refused):
    path = tmp_path / "model.ckpt"
    torch.save({"features": {"w": torch.zeros(2)}, "extra": payload, "config": {}}, path)  # written by a stranger
    for load in (lambda: load_checkpoint(path, config={}), lambda: safe_load(path)):
        with pytest.raises(ValueError, match=r"model\.ckpt' is not a plain checkpoint.*" + refused) as err:
            load()
        assert "could run code" in str(err.value)
    assert "pwned" not in capfd.readouterr().out


def test_safe_load_reads_tensors_and_plain_values(tmp_path):
    state = {"w": torch.arange(4.0), "opt": {"state": {0: {"m": torch.ones(2)}}, "param_groups": [{"lr": 0.1,
             "nesterov": False, "foreach": None, "params": [0]}]}, "shape": (1, 28, 28), "name": "lenet"}
    save_checkpoint(state, tmp_path / "ck.pt", config={"seed": 0})
    loaded = safe_load(tmp_path / "ck.pt")
    assert torch.equal(loaded["w"], state["w"]) and loaded["shape"] == (1, 28, 28) and loaded["config"] == {"seed": 0}
    assert torch.equal(loaded["opt"]["state"][0]["m"], torch.ones(2)) and loaded["opt"]["param_groups"][0]["lr"] == 0.1
    with pytest.raises(FileNotFoundError):
        safe_load(tmp_path / "missing.pt")


def test_what_is_not_plain_is_refused_when_saving_naming_the_key(tmp_path):
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"ck\.pt'\['extra'\]\['m'\] is a numpy.ndarray; a checkpoint holds tensors"):
        save_checkpoint({"extra": {"m": np.zeros(2)}}, path, config={})
    with pytest.raises(TypeError, match=r"\['history'\]\[0\] is a builtins.builtin_function"):
        save_checkpoint({"history": [len]}, path, config={})
    assert not path.exists() and list(tmp_path.iterdir()) == []
    check_plain({"a": [1, 2.0, "x", None, True, (torch.zeros(1),)], 3: {"b": torch.ones(1)}})


def test_a_config_of_dataclasses_is_saved_plain_and_matches_itself(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.ones(2)}, path, config={"settings": PlainConfig()})
    assert safe_load(path)["config"]["settings"]["lr_p"] == PlainConfig().lr_p  # a dict, loadable safely
    assert torch.equal(load_checkpoint(path, config={"settings": PlainConfig()})["w"], torch.ones(2))
    with pytest.raises(ValueError, match="different config.*epochs"):
        load_checkpoint(path, config={"settings": PlainConfig(epochs=3)})


def test_methods_state_is_plain():
    """Every method's resumable state passes the check (an optimizer's state dict included)."""
    from builders import blobs, plain_config, soseleto_config

    from soseleto.core.models import build
    from soseleto.core.soseleto import Soseleto
    from soseleto.methods.plain import PlainSGD

    features, (head,) = build("mlp", (4,), [3], seed=0, hidden=8)
    sos = Soseleto(features, head, None, n_source=20, n_target=6,
                   cfg=soseleto_config(momentum=0.9, source_batch=4, target_batch=3, target_grad_decay=0.9))
    data = blobs(8, seed=0)
    sos.step(data.x[:4], data.y[:4], torch.arange(4), data.x[4:7], data.y[4:7])
    plain = PlainSGD(features, head, plain_config(momentum=0.9))
    plain.step(data.x, data.y, torch.arange(8))
    for method in (sos, plain):
        check_plain(method.state_dict())
