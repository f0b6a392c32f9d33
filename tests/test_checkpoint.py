import pytest
import torch

from soseleto.checkpoint import load_checkpoint, save_checkpoint


def test_roundtrip_and_config_check(tmp_path):
    path = tmp_path / "ck.pt"
    cfg = {"trainer": {"lr_p": 0.1, "epochs": 3}, "seed": 0}
    save_checkpoint({"alpha": torch.arange(3.0), "epoch": 2}, path, config=cfg)
    state = load_checkpoint(path, config=cfg)
    assert state["epoch"] == 2 and torch.equal(state["alpha"], torch.arange(3.0))
    other = {"trainer": {"lr_p": 0.2, "epochs": 3}, "seed": 0}
    with pytest.raises(ValueError, match=r"different config \(trainer.lr_p: 0.1 vs 0.2\)"):
        load_checkpoint(path, config=other)


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"x": torch.zeros(1000)}, path, config={})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="ck.pt.*could not be read"):
        load_checkpoint(path, config={})
