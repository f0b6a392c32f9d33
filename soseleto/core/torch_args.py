"""Argument helpers for the torch-function handlers of forward mode and the ghost pass."""

from __future__ import annotations


def bind_args(names, args, kwargs, **defaults) -> tuple:
    """The values of a call's arguments in the order of ``names`` (for torch-function handlers)."""
    values = dict(defaults)
    values.update(zip(names, args))
    values.update(kwargs)
    return tuple(values[n] for n in names)


def pair(v) -> list[int]:
    """``2`` -> ``[2, 2]``; ``(1, 2)`` -> ``[1, 2]`` (conv stride/padding/dilation)."""
    return [int(v), int(v)] if isinstance(v, int) else [int(i) for i in v]
