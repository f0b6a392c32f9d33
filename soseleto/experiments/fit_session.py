"""What ``soseleto fit`` needs around its training: the ``--out`` folder, its lock, the identity
of a run (so a killed run resumes only into the same settings and data) and a progress bar.

* :func:`check_out` refuses an ``--out`` that is, or looks like, a file, before anything is read.
* :func:`out_lock` holds ``OUT/.lock`` (created exclusively, holding the PID) while a run writes to
  ``OUT``, so a second ``soseleto fit`` into the same folder is refused; a lock left by a process
  that no longer runs (on this machine) is taken over with a warning.
* :func:`fingerprint` and :func:`run_identity`: the settings and a hash of every set's images and
  labels; the resume file ``OUT/.resume.pt`` is reused only by a run of the same identity.
* :class:`Progress`: wraps a method (its ``step``) and draws a one-line bar of the steps of the
  epoch on stderr when that is a terminal; every other attribute is the method's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# suffixes of the files fit reads or writes: an --out ending so is a file name given by mistake
FILE_SUFFIXES = (".npz", ".npy", ".csv", ".json", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".yaml", ".yml", ".txt")
LOCK_NAME = ".lock"
RESUME_NAME = ".resume.pt"


def check_out(out: str | os.PathLike) -> Path:
    """``out`` as a folder path; raises ``ValueError`` when it is an existing file, or does not exist
    and ends like a file name (``.npz``, ``.csv``, ``.pt``, ``.json``, ...)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} is an existing file; --out is the folder that receives "
                         "weights.csv, model.pt and metrics.json")
    if not path.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(f"--out {str(path)!r} looks like a file name ({path.suffix}); --out is a folder that "
                         "receives weights.csv, model.pt and metrics.json, e.g. --out "
                         f"{str(path.with_suffix(''))!r}")
    return path


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[Path]:
    """Hold ``out/.lock`` while the block runs (creating ``out``); on exit remove the lock and, when
    this call created ``out`` and it is still empty, ``out`` itself.

    Raises ``ValueError`` naming the holder's PID when another running process holds the lock.
    """
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_NAME
    _acquire(lock)
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text().strip() == str(os.getpid()):
                lock.unlink()
        for folder in created:  # deepest first: only folders this run made and left empty
            with contextlib.suppress(OSError):
                folder.rmdir()


def _acquire(lock: Path) -> None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None and _alive(holder):
                raise ValueError(
                    f"--out {str(lock.parent)!r} is in use by another soseleto fit (PID {holder}, lock file "
                    f"{str(lock)!r}); wait for it to finish or choose another --out") from None
            log.warning("taking over the stale lock %s (its process %s no longer runs)", lock, holder)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return
    raise ValueError(f"could not take the lock {str(lock)!r}: another process keeps creating it")


def _holder(lock: Path) -> int | None:
    """The PID written in ``lock``, or ``None`` when it is unreadable or holds no PID."""
    with contextlib.suppress(OSError, ValueError):
        return int(lock.read_text().split()[0])
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


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


def no_space(err: OSError) -> bool:
    """Whether ``err`` is a full disk (or quota)."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)
