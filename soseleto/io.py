"""Atomic output files that carry their provenance.

Every writer here writes to a temporary file in the destination directory and renames it into
place, so a killed job never leaves a file that looks complete. CSV files get a sidecar
``<name>.provenance.json``; JSON files embed a ``provenance`` key; figures carry it in their
metadata.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from soseleto import __version__


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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

    return {
        "soseleto_version": __version__,
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        **extra,
    }


def write_json(obj: dict, path: str | os.PathLike, *, prov: dict | None = None) -> None:
    """Write ``obj`` (plus ``provenance`` when given) as indented JSON, atomically."""
    data = dict(obj) if prov is None else {**obj, "provenance": prov}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


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


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
