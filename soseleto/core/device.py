"""Device selection: every public entry point takes a ``device`` argument.

Several workflow jobs may share a machine's GPUs (``--resources gpu=N`` with N above the number of
cards). :func:`spread` gives such a job the card that holds the fewest other soseleto jobs, by
taking a slot lock (``fcntl.flock`` on a file named after the card's UUID) that the operating
system releases when the process ends, however it ends.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch

log = logging.getLogger(__name__)

MAX_SLOTS = 256  # jobs per card before a claim gives up (far above what any card holds)
_claim: Claim | None = None  # this process's slot (spread)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a concrete ``torch.device``; ``"auto"`` picks CUDA when present.

    Raises ``ValueError`` naming the value when CUDA is requested but unavailable.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a valid torch device ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available on this machine")
    return dev


def spread(device: str, *, lock_dir: str | os.PathLike | None = None) -> str:
    """``device`` for a workflow job: ``"auto"`` on a machine with several visible CUDA cards becomes
    ``"cuda:i"``, the card with the fewest soseleto jobs (:func:`claim_slot`); anything else, or a
    machine with one card or none, is returned unchanged. A process claims once and holds its slot
    until it ends; later calls return the same card."""
    if device != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    global _claim
    if _claim is None:
        keys = [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
        _claim = claim_slot(keys, lock_dir)
        log.info("device auto: cuda:%d (%s), job slot %d on that card", _claim.card, keys[_claim.card], _claim.slot)
    return f"cuda:{_claim.card}"


@dataclass
class Claim:
    """A held slot: card index, slot number on that card, and the open lock file (closing it frees the slot)."""

    card: int
    slot: int
    file: IO[str]


def claim_slot(keys: list[str], lock_dir: str | os.PathLike | None = None) -> Claim:
    """Take the first free slot lock, slot 0 of every card before slot 1 of any, so that jobs fill
    the cards evenly. ``keys``: one name per card (its UUID, which ``CUDA_VISIBLE_DEVICES`` does not
    renumber). ``lock_dir``: where the lock files live (default: a per-user folder in the temporary
    directory)."""
    import fcntl

    folder = Path(lock_dir or Path(tempfile.gettempdir()) / f"soseleto-gpu-slots-{os.getuid()}")
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        for card, key in enumerate(keys):
            f = open(folder / f"{key}.{slot}.lock", "a")  # noqa: SIM115  (held open: the lock lives with it)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            return Claim(card, slot, f)
    raise RuntimeError(f"{folder}: all {MAX_SLOTS} job slots of every card are taken; remove its lock files only "
                       "if no soseleto job runs")
