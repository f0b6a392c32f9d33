"""Atomic output files that carry their provenance.

Every writer here writes to a temporary file in the destination directory and renames it into
place, so a killed job never leaves a file that looks complete. CSV files get a sidecar
``<name>.provenance.json``; JSON files embed a ``provenance`` key; figures carry it in their
metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import json
import math
import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pandas as pd

from soseleto import __version__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The file gets the permissions a plain ``open(path, "w")`` would give it: those of the file it
    replaces, or ``0o666`` less the umask for a new one (a temporary file is private, ``0o600``).
    On failure the temporary file is removed and a previous ``path`` is left as it was; an
    ``OSError`` (a full disk: ``ENOSPC``, :func:`no_space`) is raised again naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _open_mode(path))
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        _sync(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.filename not in (None, tmp):  # about another file (an input, say): its own message names it
            raise
        raise OSError(err.errno, f"{err.strerror or err} (while writing {str(path)!r})", str(path)) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sync(path: str) -> None:
    """Flush ``path`` to the disk, so that a full disk surfaces here (some filesystems allocate
    blocks only then) and not after the rename."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def no_space(err: BaseException) -> bool:
    """Whether ``err`` is a full disk (or quota)."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _open_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` leaves ``path`` with."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can only
    be read by setting it, which another thread could observe)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(config: Any = None, **extra: Any) -> dict[str, Any]:
    """What produced a result: config values, package versions, git commit, time, plus ``extra``."""
    import torch

    return base_provenance(config, torch_version=torch.__version__, **extra)


def base_provenance(config: Any = None, **extra: Any) -> dict[str, Any]:
    """:func:`provenance` without torch's version, so without importing torch: for what is
    computed where torch is not loaded (the cost plan)."""
    return {
        "soseleto_version": __version__,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        **extra,
    }


def write_json(obj: dict, path: str | os.PathLike, *, prov: dict | None = None) -> None:
    """Write ``obj`` (plus ``provenance`` when given) as indented strict JSON (NaN and infinities
    become ``null``), atomically."""
    data = dict(obj) if prov is None else {**obj, "provenance": prov}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2, default=_jsonable, allow_nan=False) + "\n")


def write_markdown(text: str, path: str | os.PathLike, *, prov: dict | None = None) -> None:
    """Write a markdown table or report atomically; provenance goes to ``<path>.provenance.json``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    if prov is not None:
        write_json(prov, str(path) + ".provenance.json")


def write_csv(df: pd.DataFrame, path: str | os.PathLike, *, prov: dict | None = None) -> None:
    """Write ``df`` without its index, atomically; provenance goes to ``<path>.provenance.json``."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    if prov is not None:
        write_json(prov, str(path) + ".provenance.json")


def save_figure(fig, path: str | os.PathLike, *, prov: dict | None = None, dpi: int = 150) -> None:
    """Save a matplotlib figure atomically; PNG/PDF metadata record the provenance."""
    path = Path(path)
    meta = None
    if prov is not None:
        text = json.dumps(prov, default=_jsonable)
        meta = {"Comment": text} if path.suffix == ".png" else {"Subject": text}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=dpi, metadata=meta, bbox_inches="tight")


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (recursively)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _finite(obj.tolist())
    return obj


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
