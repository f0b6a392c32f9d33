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
