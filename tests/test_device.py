"""Device selection (:mod:`soseleto.core.device`) and explicit randomness (:mod:`soseleto.core.rng`)."""

import pytest
import torch

from soseleto.core.device import resolve_device
from soseleto.core.rng import generator, seeded


def test_auto_picks_cuda_only_when_present():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present on this machine")
def test_missing_cuda_is_named():
    with pytest.raises(ValueError, match=r"device='cuda:1' requested but CUDA is not available"):
        resolve_device("cuda:1")


def test_invalid_device_is_named():
    with pytest.raises(ValueError, match=r"device='gpu0' is not a valid torch device"):
        resolve_device("gpu0")


def test_seeded_blocks_restore_the_global_generator():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with seeded(1):
        inside = torch.rand(2)
    assert torch.equal(torch.rand(2), expected)
    with seeded(1):
        assert torch.equal(torch.rand(2), inside)
    assert torch.equal(torch.randperm(10, generator=generator(3)), torch.randperm(10, generator=generator(3)))
    assert generator(3).device == torch.device("cpu")


def test_slots_fill_every_card_before_doubling_up(tmp_path):
    from soseleto.cost.gpus import claim_slot

    claims = [claim_slot(["a", "b"], tmp_path) for _ in range(5)]
    assert [(c.card, c.slot) for c in claims] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    claims[1].file.close()  # a job on card b ends: the next one takes its place
    again = claim_slot(["a", "b"], tmp_path)
    assert (again.card, again.slot) == (1, 0)


def test_a_slot_is_freed_when_its_process_dies(tmp_path):
    import subprocess
    import sys

    from soseleto.cost.gpus import claim_slot

    holder = ("import sys, time; from soseleto.cost.gpus import claim_slot; "
              f"c = claim_slot(['a', 'b'], {str(tmp_path)!r}); print(c.card, c.slot, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["0", "0"]
        assert claim_slot(["a", "b"], tmp_path).card == 1  # card a holds the other process's job
    finally:
        proc.kill()
        proc.wait()
    freed = claim_slot(["a", "b"], tmp_path)
    assert (freed.card, freed.slot) == (0, 0)


def test_spread_leaves_a_named_device_or_a_single_card_alone(tmp_path):
    from soseleto.cost.gpus import spread

    assert spread("cpu", lock_dir=tmp_path) == "cpu"
    assert spread("cuda:1", lock_dir=tmp_path) == "cuda:1"
    if torch.cuda.device_count() < 2:
        assert spread("auto", lock_dir=tmp_path) == "auto"
        assert not any(tmp_path.iterdir())


def test_spread_claims_one_card_per_process_on_a_several_card_machine(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from soseleto.cost import gpus as device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=f"GPU-{i}"))
    monkeypatch.setattr(device, "_claim", None)
    others = [device.claim_slot(["GPU-0", "GPU-1", "GPU-2"], tmp_path) for _ in range(2)]  # two jobs run already
    assert device.spread("auto", lock_dir=tmp_path) == "cuda:2"
    assert device.spread("auto", lock_dir=tmp_path) == "cuda:2"  # the same claim, not a second one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GPU-0.0.lock", "GPU-1.0.lock", "GPU-2.0.lock"]
    assert [c.card for c in others] == [0, 1]
    device._claim.file.close()
