"""Device selection: every public entry point takes a ``device`` argument (which card a workflow
job takes among several: :mod:`soseleto.cost.gpus`)."""

from __future__ import annotations

import torch


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
