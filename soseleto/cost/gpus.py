"""Where workflow jobs run: the NVIDIA GPUs visible here (counted without torch, for the cost plan)
and, with several, which card a job takes.

Several workflow jobs may share a machine's GPUs (``--resources gpu=N`` with N above the number of
cards). :func:`spread` gives such a job the card that holds the fewest other soseleto jobs, by
taking a slot lock (``fcntl.flock`` on a file named after the card's UUID) that the operating
system releases when the process ends, however it ends. Imports torch only inside :func:`spread`.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MAX_SLOTS = 256  # jobs per card before a claim gives up (far above what any card holds)
_claim: Claim | None = None  # this process's slot (spread)


def default_device(device: str) -> str:
    """The device the plan prices for a config's ``device``: ``cpu`` when it pins training to the CPU,
    or says ``auto`` and this machine shows no NVIDIA GPU; else ``cuda``. Torch-free, so the plan
    stays instant."""
    if device == "cpu" or (device == "auto" and not gpu_visible()):
        return "cpu"
    return "cuda"


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible here without importing torch: the driver lists one and
    ``CUDA_VISIBLE_DEVICES`` does not hide them all."""
    return gpu_count() > 0


def gpu_count(driver: str | os.PathLike = "/proc/driver/nvidia/gpus") -> int:
    """NVIDIA GPUs visible here, without importing torch: the cards the driver lists (1 when only
    ``nvidia-smi`` shows there is one), or fewer when ``CUDA_VISIBLE_DEVICES`` names fewer."""
    gpus = Path(driver)
    cards = sum(1 for _ in gpus.iterdir()) if gpus.is_dir() else int(shutil.which("nvidia-smi") is not None)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return cards
    return min(cards, len([v for v in visible.split(",") if v.strip() not in ("", "-1")]))


def gpu_layout(gpu_slots: int | None) -> dict[str, int]:
    """``gpus`` (the cards visible here, at least 1) and ``jobs_per_gpu`` for Snakemake's
    ``--resources gpu=<gpu_slots>``: the training jobs it lets run at once, spread evenly over the cards."""
    gpus = max(1, gpu_count())
    return {"gpus": gpus, "jobs_per_gpu": max(1, math.ceil((gpu_slots or gpus) / gpus))}


def spread(device: str, *, lock_dir: str | os.PathLike | None = None) -> str:
    """``device`` for a workflow job: ``"auto"`` on a machine with several visible CUDA cards becomes
    ``"cuda:i"``, the card with the fewest soseleto jobs (:func:`claim_slot`); anything else, or a
    machine with one card or none, is returned unchanged. A process claims once and holds its slot
    until it ends; later calls return the same card."""
    import torch

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
