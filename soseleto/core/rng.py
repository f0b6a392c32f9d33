"""Explicit randomness: library code never seeds the global generators."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (index permutations are drawn on the CPU,
    so the same seed gives the same batches on every device)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. building a model, whose layers draw from the global generator) under
    ``seed`` and restore the caller's global RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
