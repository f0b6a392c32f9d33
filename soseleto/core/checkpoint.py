"""Checkpoints: atomic ``torch.save`` of a state dict that carries the config that produced it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from soseleto.config import plain
from soseleto.io import atomic_path


def identity(method: str, settings: Any, *, seed: int, **context: Any) -> dict[str, Any]:
    """What a run's checkpoint must have been written for to be resumed or reused (fine-tuning,
    two-stage): the method, its settings (a config section), the seed and the run's context (data,
    noise level, target size, ...)."""
    return {"method": method, "seed": seed, **plain({"settings": settings, **context})}


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, config: Any) -> None:
    """Write ``state`` plus ``config`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save({**state, "config": config}, tmp)


def load_checkpoint(path: str | os.PathLike, *, config: Any, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for the same ``config``.

    Raises ``ValueError`` naming the path and the differing keys when it was written for
    another config, or when the file cannot be read.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated or foreign file: torch raises several types
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {err}") from err
    saved = state.get("config")
    if saved != config:
        diff = _diff(saved, config)
        raise ValueError(f"checkpoint {str(path)!r} was written for a different config ({diff}); delete it to start afresh")
    return state


def _diff(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return ", ".join(d for k in keys if (d := _diff(a.get(k), b.get(k), f"{where}{k}.")))
    return "" if a == b else f"{where.rstrip('.') or 'config'}: {a!r} vs {b!r}"


def resume_path(final: str | os.PathLike) -> str:
    """Where a training job keeps its resumable state while it runs: beside its declared
    checkpoint output, but not declared itself, so Snakemake never deletes it when a job fails
    or is killed (it deletes the outputs of such jobs), and the re-run resumes from it."""
    return str(final) + ".resume"


def publish(resume: str | os.PathLike, final: str | os.PathLike) -> None:
    """Copy the finished run's state to its declared output, atomically; the resume file stays,
    so a failure after this point still resumes from the end."""
    with atomic_path(final) as tmp:
        shutil.copyfile(resume, tmp)
