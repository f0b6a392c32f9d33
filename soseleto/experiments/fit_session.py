"""What ``soseleto fit`` needs around its training: the ``--out`` folder, its lock, the identity
of a run (so a killed run resumes only into the same settings and data) and a progress bar.

* :func:`check_out` refuses an ``--out`` that is, or looks like, a file, before anything is read.
* :func:`out_lock` holds a kernel lock on ``OUT/.lock`` (``fcntl.flock``; the file names the PID)
  while a run writes to ``OUT``, so a second ``soseleto fit`` into the same folder is refused; the
  kernel releases it when the run ends, however it ends, so a killed run's lock never blocks the
  next one, whatever process now has its PID.
* :func:`fingerprint` and :func:`run_identity`: the settings and a hash of every set's images and
  labels; the resume file ``OUT/.resume.pt`` is reused only by a run of the same identity.
* :func:`check_model_state` and :func:`check_shapes`: a ``model.pt`` (plain values, but possibly
  hostile) checked key by key against types and limits before a network is built from it.
* :class:`Progress`: wraps a method (its ``step``) and draws a one-line bar of the steps of the
  epoch on stderr when that is a terminal; every other attribute is the method's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from soseleto import validate

log = logging.getLogger(__name__)

# suffixes of the files fit reads or writes: an --out ending so is a file name given by mistake
FILE_SUFFIXES = (".npz", ".npy", ".csv", ".json", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".yaml", ".yml", ".txt")
LOCK_NAME = ".lock"
RESUME_NAME = ".resume.pt"
STAGING_PREFIX = ".staging-"  # + PID: where the outputs are written before they are moved into --out
OUTPUT_NAMES = ("weights.csv", "weights.csv.provenance.json", "model.pt", "metrics.json", RESUME_NAME)


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a folder path; raises ``ValueError`` when it is an existing file, lies below one,
    cannot be written (a read-only filesystem, no permission), or does not exist and ends like a
    file name (``.npz``, ``.csv``, ``.pt``, ``.json``, ...)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is an existing file; --out is the folder that receives "
                         "weights.csv, model.pt and metrics.json")
    if not path.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(f"--out {str(path)!r} looks like a file name ({path.suffix}); --out is a folder that "
                         "receives weights.csv, model.pt and metrics.json, e.g. --out "
                         f"{str(path.with_suffix(''))!r}")
    base = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not base.is_dir():
        raise ValueError(f"--out {str(path)!r} lies below {str(base)!r}, which is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if _read_only(base) else "is not writable by this user"
        raise ValueError(f"--out {str(path)!r} cannot be written: {str(base)!r} {why}; choose another --out")
    return path


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[Path]:
    """Hold ``out/.lock`` while the block runs (creating ``out``); on exit remove the lock and, when
    this call created ``out`` and it is still empty, ``out`` itself.

    The lock is the kernel's (``fcntl.flock``), released when its holder ends however it ends; the
    file's content, the holder's PID, is only shown in the refusal. Raises ``ValueError`` naming
    that PID when another process holds the lock. Once held, what a killed run left in ``out`` (a
    staging folder, temporary files of an interrupted write) is removed: no other run writes there.
    """
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {str(out)!r} cannot be created ({err.strerror or err}); choose another --out") from None
    lock = out / LOCK_NAME
    fd = _acquire(lock)
    try:
        _remove_leftovers(out)
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # still held: a process that opened it meanwhile sees it gone and retries
        os.close(fd)
        for folder in created:  # deepest first: only folders this run made and left empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _acquire(lock: Path) -> int:
    """Take the kernel lock on ``lock`` and write this PID into it; returns its open descriptor."""
    import fcntl

    for _ in range(100):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ValueError(f"--out {str(lock.parent)!r}: cannot create the lock file {str(lock)!r} "
                             f"({err.strerror or err}); choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd).strip() or "not yet written"
            os.close(fd)
            raise ValueError(f"--out {str(lock.parent)!r} is in use by another soseleto fit (PID {holder}, lock "
                             f"file {str(lock)!r}); wait for it to finish or choose another --out") from None
        except OSError as err:
            os.close(fd)
            raise ValueError(f"--out {str(lock.parent)!r}: cannot lock {str(lock)!r} ({err.strerror or err}); "
                             "choose an --out on a filesystem with file locks") from None
        if not _same_file(fd, lock):  # unlinked by the holder that finished while we waited: try again
            os.close(fd)
            continue
        previous = _read(fd).strip()
        if previous:
            log.warning("taking over the stale lock %s (its process %s no longer holds it)", lock, previous)
        with contextlib.suppress(OSError):  # the PID is information only: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
    raise ValueError(f"could not take the lock {str(lock)!r}: other processes keep taking and removing it")


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 64, 0).decode(errors="replace")
    return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _remove_leftovers(out: Path) -> None:
    """Remove staging folders and temporary files of writes into ``out`` that a killed run left."""
    for entry in out.iterdir():
        name = entry.name
        stale_tmp = name.endswith(".tmp") and any(name.startswith(f".{o}.") for o in OUTPUT_NAMES)
        if name.startswith(STAGING_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif stale_tmp and entry.is_file():
            entry.unlink(missing_ok=True)
        else:
            continue
        log.warning("removed %s, left by a run that was killed while writing", entry)


def fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 (hex) of images ``x`` ``(N, C, H, W)`` and labels ``y`` ``(N,)``, shapes included."""
    h = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def run_identity(settings: dict[str, Any], data: dict[str, str | None]) -> dict[str, Any]:
    """What a resume file must have been written for: the training ``settings`` (plain values) and
    the ``data`` fingerprints (set name -> :func:`fingerprint`)."""
    return {"fit": settings, "data": data}


def check_shapes(expected: dict, found: dict, part: str, path) -> None:
    """Refuse weights ``found`` whose names or shapes are not those of the network's ``expected``."""
    if set(expected) != set(found):
        odd = sorted(set(expected) ^ set(found))[:3]
        raise ValueError(f"{os.fspath(path)!r}: not a model.pt written by soseleto fit: {part} has other weights "
                         f"than its network ({', '.join(map(str, odd))}, ...)")
    for key, value in expected.items():
        if tuple(found[key].shape) != tuple(value.shape):
            raise ValueError(f"{os.fspath(path)!r}: not a model.pt written by soseleto fit: {part} {key} has shape "
                             f"{tuple(found[key].shape)}, its network {tuple(value.shape)}")


def check_model_state(state, path: str) -> tuple[tuple[int, int, int], str, int]:
    """``(image shape (C, H, W), model name, classes of the head it predicts with)`` of a loaded
    ``model.pt``, after checking every value those come from against its type and limits (before
    anything is built from them); ``ValueError`` naming ``path`` and the key otherwise."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{path!r} is not a model.pt written by soseleto fit: {what}")

    if not isinstance(state, dict):  # the file's content is wrong: a ValueError like the others
        raise bad(f"it holds a {type(state).__name__}, not a dict")
    missing = sorted({"config", "features", "source_head", "target_head", "in_shape", "n_source_classes",
                      "n_target_classes"} - set(state))
    if missing:
        raise bad(f"no {', '.join(missing)}")
    cfg, shape = state["config"], state["in_shape"]
    from soseleto.core.models import MODELS

    if not isinstance(cfg, dict):
        raise bad(f"config is {cfg!r}, not a dict")
    if cfg.get("model") not in MODELS:
        raise bad(f"config.model is {cfg.get('model')!r}, not one of {sorted(MODELS)}")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(type(v) is int for v in shape)
            or shape[0] not in (1, 3) or not all(1 <= v <= validate.MAX_SIDE for v in shape[1:])):
        raise bad(f"in_shape is {shape!r}, not (C, H, W) with C = 1 or 3 and sides 1..{validate.MAX_SIDE}")
    key = "n_source_classes" if state["target_head"] is None else "n_target_classes"
    k = state[key]
    if type(k) is not int or not 2 <= k <= validate.MAX_CLASSES:
        raise bad(f"{key} is {k!r}, not a number of classes 2..{validate.MAX_CLASSES}")
    for key in ("mean", "std"):
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (shape[0],):
            raise bad(f"{key} is not a tensor of {shape[0]} channel value(s)")
    for part in ("features", "source_head") + (() if state["target_head"] is None else ("target_head",)):
        weights = state[part]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise bad(f"{part} is not a dict of tensors")
    return tuple(shape), cfg["model"], k


class Progress:
    """``method`` with a one-line progress bar of each epoch's steps on ``stream`` (a terminal).

    Parameters
    ----------
    method
        The wrapped method; ``step``'s result is passed through, every other attribute delegated.
    steps_per_epoch, epochs
        For the bar's length and its ``epoch e/E`` label.
    first_epoch
        The epoch the run starts in (after a resume: the epochs already done + 1).
    """

    def __init__(self, method: Any, *, steps_per_epoch: int, epochs: int, first_epoch: int = 1,
                 stream=None) -> None:
        self.method, self.steps_per_epoch, self.epochs = method, max(1, steps_per_epoch), epochs
        self.epoch, self.done, self.stream = first_epoch, 0, stream or sys.stderr
        self._last = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)

    def step(self, *batch):
        out = self.method.step(*batch)
        self.done += 1
        now = time.monotonic()
        if self.done >= self.steps_per_epoch:
            self.stream.write("\r\033[K")  # clear the bar before the epoch's log line
            self.stream.flush()
            self.done, self.epoch = 0, self.epoch + 1
        elif now - self._last > 0.2:
            self._last = now
            filled = 30 * self.done // self.steps_per_epoch
            self.stream.write(f"\rfit: epoch {self.epoch}/{self.epochs} [{'#' * filled}{'.' * (30 - filled)}] "
                              f"{self.done}/{self.steps_per_epoch} steps")
            self.stream.flush()
        return out


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is attached to a terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())
