"""What finished runs cost, from their ``metrics.json`` (``soseleto plan --measured``). Imports
neither torch nor pandas."""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from soseleto.config import methods as registry


def run_costs(metrics_jsons: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """What finished runs cost, from their ``metrics.json``: per (task, method), the runs, steps per
    epoch (training set / batch), the median seconds per epoch over every epoch of every run and
    the ms per step it implies (evaluation after an epoch is included)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for path in metrics_jsons:
        r = json.loads(Path(path).read_text())
        if "method" not in r or "history" not in r:  # not a training run's metrics (e.g. the synthetic summary)
            continue
        protocol = "noisy" if "noise" in r else "transfer"
        if (protocol, r["method"]) not in registry.REGISTRY:
            continue
        passes = registry.get(protocol, r["method"]).passes
        if len(passes) != 1 or passes[0][0] == "union":  # two stages, or a set the metrics do not count
            continue
        settings = (r.get("provenance", {}).get("config") or {}).get("settings") or {}
        batch = settings.get("source_batch") or settings.get("batch")
        n = r.get(f"n_{passes[0][0]}")
        seconds = [h["seconds"] for h in r.get("history", []) if h.get("seconds") is not None]
        if not (batch and n and seconds):
            continue
        task = Path(path).parts[Path(path).parts.index("results") + 1:][:2] if "results" in Path(path).parts else ("?",)
        g = groups.setdefault(("/".join(task), r["method"]), {"runs": 0, "seconds": [], "steps": math.ceil(n / batch),
                                                               "batch": batch, "device": r["provenance"].get("device")})
        g["runs"] += 1
        g["seconds"] += seconds
    return [{"task": task, "method": method, "runs": g["runs"], "epochs": len(g["seconds"]) // g["runs"],
             "batch": g["batch"], "steps_per_epoch": g["steps"], "seconds_per_epoch": statistics.median(g["seconds"]),
             "ms_per_step": 1000 * statistics.median(g["seconds"]) / g["steps"], "device": g["device"]}
            for (task, method), g in groups.items()]


def run_costs_markdown(costs: list[dict[str, Any]]) -> str:
    """:func:`run_costs` as a markdown table."""
    head = ["task", "method", "runs", "epochs", "batch", "steps per epoch", "s per epoch (median)", "ms per step",
            "device"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for c in costs:
        lines.append(f"| {c['task']} | {c['method']} | {c['runs']} | {c['epochs']} | {c['batch']} | "
                     f"{c['steps_per_epoch']} | {c['seconds_per_epoch']:.2f} | {c['ms_per_step']:.0f} | {c['device']} |")
    return "\n".join(lines) + "\n"
