"""Image sets shipped inside the package, named like torchvision sets but read from a file here.

``mnist5k``: 5,000 real MNIST digits (500 per class), 28x28 gray, as an ``.npz`` of ``x`` uint8
``(5000, 28, 28)`` and ``y`` int64 ``(5000,)``. ``digits8x8``: scikit-learn's 1,797 real 8x8 digits
(UCI optdigits, 174-183 per class), ``x`` uint8 ``(1797, 8, 8)`` (0-16 scaled to 0-255) and ``y``
int64 ``(1797,)``: another domain than MNIST (other writers, other scanning, 8x8). Origin, licence
and how each was made are in the README beside them. A built-in set is a file: it has no test split
of its own (hold one out of it).

This module imports neither torch nor numpy: the config and the workflow read its names.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> file in this folder (the package data of pyproject.toml)
BUILTIN: dict[str, str] = {"mnist5k": "mnist5k.npz", "digits8x8": "digits8x8.npz"}


def is_builtin(dataset: str) -> bool:
    """Whether ``dataset`` names a set shipped with the package (:data:`BUILTIN`)."""
    return dataset.lower() in BUILTIN


def resolve(dataset: str) -> str:
    """The file of a built-in set ``dataset``; any other name or path is returned unchanged."""
    return str(HERE / BUILTIN[dataset.lower()]) if is_builtin(dataset) else dataset
