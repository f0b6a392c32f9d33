import pytest
import torch

from soseleto.config import DataConfig, PlainConfig
from soseleto.core.checkpoint import identity, load_checkpoint, publish, resume_path, save_checkpoint


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


def test_publish_copies_the_resume_file_and_keeps_it(tmp_path):
    final = tmp_path / "run" / "model.ckpt"
    resume = resume_path(final)
    assert resume == str(final) + ".resume"
    save_checkpoint({"epoch": 3}, resume, config={"k": 1})
    publish(resume, final)
    assert load_checkpoint(final, config={"k": 1})["epoch"] == 3
    assert load_checkpoint(resume, config={"k": 1})["epoch"] == 3
    assert sorted(p.name for p in final.parent.iterdir()) == ["model.ckpt", "model.ckpt.resume"]
