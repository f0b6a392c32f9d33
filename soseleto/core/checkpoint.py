"""Checkpoints: atomic ``torch.save`` of a state dict that carries the config that produced it.

A checkpoint holds tensors and plain Python values only (dicts, lists, tuples, str, int, float,
bool, None): :func:`save_checkpoint` refuses anything else, and :func:`safe_load` reads files
with ``torch.load(weights_only=True)``, so opening a checkpoint never runs code stored in it.
"""

from __future__ import annotations

import glob
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from soseleto.config import plain
from soseleto import validate
from soseleto.io import atomic_path


def identity(method: str, settings: Any, *, seed: int, **context: Any) -> dict[str, Any]:
    """What a run's checkpoint must have been written for to be resumed or reused (fine-tuning,
    two-stage): the method, its settings (a config section), the seed and the run's context (data,
    noise level, target size, ...)."""
    return {"method": method, "seed": seed, **plain({"settings": settings, **context})}


PLAIN_TYPES = (str, int, float, bool, type(None))


def check_plain(obj: Any, where: str = "state") -> None:
    """Raise ``TypeError`` naming the key path of the first value of ``obj`` that is neither a
    tensor nor plain data (dicts with str or int keys, lists, tuples, str, int, float, bool, None)."""
    if isinstance(obj, (torch.Tensor, *PLAIN_TYPES)):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; a checkpoint "
                                "holds str and int keys only")
            check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds tensors "
                    "and plain values only (dict, list, tuple, str, int, float, bool, None)")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, *, config: Any) -> None:
    """Write ``state`` plus ``config`` to ``path`` atomically (temporary file, then rename).
    ``config`` is made plain (:func:`soseleto.config.plain`: dataclasses become dicts) and the
    state must be (:func:`check_plain`), so that :func:`safe_load` can read them back."""
    full = {**state, "config": plain(config)}
    check_plain(full, f"checkpoint {os.fspath(path)!r}")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(full, f)
        except RuntimeError as err:  # torch's writer reports a failed write ("unexpected pos") as this
            cause = _os_error(err)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror) from err  # a full disk: atomic_path names the file


def _os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` (e.g. ``ENOSPC``) behind ``err``, from its chain of causes, or ``None``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` restricted to tensors and plain values (``weights_only=True``): no code in
    the file runs. Raises ``ValueError`` naming the path when the file holds anything else
    (a pickled function or object: not a plain checkpoint) or cannot be read (truncated, not a
    checkpoint); ``FileNotFoundError`` when it does not exist."""
    validate.check_archive(path)  # its declared sizes, before torch reads it
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        raise ValueError(f"{os.fspath(path)!r} is not a plain checkpoint (tensors and plain values only): it "
                         f"stores {_refused(err)}; refusing to load it, since unpickling it could run code") from None
    except Exception as err:  # truncated or foreign file: torch raises several types
        raise ValueError(f"checkpoint {os.fspath(path)!r} could not be read: {err!r}") from err


def _refused(err: pickle.UnpicklingError) -> str:
    """What the restricted unpickler refused, from its message (e.g. 'GLOBAL posix.system')."""
    for line in str(err).splitlines():
        if "GLOBAL" in line:
            start = line.index("GLOBAL")
            return line[start:].split(" was not", 1)[0].split(" whose module", 1)[0].rstrip(".")
    return "objects other than tensors and plain values"


def load_checkpoint(path: str | os.PathLike, *, config: Any, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` for the same ``config``.

    Raises ``ValueError`` naming the path and the differing keys when it was written for
    another config, or when the file cannot be read.
    """
    path = Path(path)
    return check_config(safe_load(path, map_location), path, config=config)


def check_config(state: Any, path: str | os.PathLike, *, config: Any) -> dict[str, Any]:
    """``state``, read from the checkpoint ``path``, when it is a state dict written for ``config``;
    else ``ValueError`` naming the path and the differing keys."""
    path = Path(path)
    if not isinstance(state, dict):
        # the file's content is wrong, not the type of an argument: a ValueError like the others
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a state dict")  # noqa: TRY004
    saved, config = state.get("config"), plain(config)
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
    """Move the finished run's state onto its declared output and remove the resume files of its
    parts (:func:`discard`). A rename, atomic and without a second copy on disk; call it once
    every other output is written, since from here on a failure of the job trains it afresh."""
    os.replace(resume, final)
    discard(resume)


def discard(resume: str | os.PathLike) -> None:
    """Remove the resume file ``resume`` and those of the run's parts, ``<resume>.*`` (GLC's first
    stage, cleanlab's folds), once the job's outputs are all written; absent files are fine."""
    resume = os.fspath(resume)
    for path in [resume, *glob.glob(glob.escape(resume) + ".*")]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
