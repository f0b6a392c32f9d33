"""What a figure was made from, read from its inputs' provenance: figures made from generated
stand-ins carry :data:`GENERATED` in their title, all in the same words."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from soseleto.config import DATASET_NAMES

GENERATED = " [generated data]"


def provenance_of(path: str | Path) -> dict[str, Any] | None:
    """The provenance of a result file: a JSON file's ``provenance`` key, else ``<path>.provenance.json``."""
    path = Path(path)
    if path.suffix == ".json" and path.is_file():
        return json.loads(path.read_text()).get("provenance")
    side = Path(f"{path}.provenance.json")
    return json.loads(side.read_text()) if side.is_file() else None


def datasets_of(config: dict[str, Any]) -> list[str]:
    """The data sets a run's config names (Table 1 protocol: ``split``; Table 2 protocol: ``task``)."""
    names = [(config.get("split") or {}).get("dataset")]
    names += [((config.get("task") or {}).get(side) or {}).get("dataset") for side in ("source", "target")]
    return [n for n in names if n]


def is_generated(config: dict[str, Any] | None) -> bool:
    """True when the run read generated stand-ins (``data.source: generated`` replaces only named sets)."""
    if not config or (config.get("data") or {}).get("source") != "generated":
        return False
    names = datasets_of(config)
    return not names or any(n.lower() in DATASET_NAMES for n in names)


def generated_mark(paths: Iterable[str | Path]) -> str:
    """:data:`GENERATED` when any of ``paths`` was made from generated stand-ins, else ``""``."""
    for path in paths:
        prov = provenance_of(path) or {}
        if is_generated(prov.get("config")):
            return GENERATED
    return ""
