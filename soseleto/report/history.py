"""Per-epoch test accuracy of every run (from the ``history`` of its metrics file), as a table and
as a figure: where a method peaks, and whether it holds its peak."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from soseleto.io import provenance, save_figure, write_csv

log = logging.getLogger(__name__)

# a method that continues another run: its epochs are counted after that run's
CONTINUES = {"finetune": "noisy_baseline"}


def history_frame(metrics_jsons: list[str], *, panel: str) -> pd.DataFrame:
    """One row per (run, epoch): ``panel`` (e.g. ``noise`` or ``n_target``), method, seed, epoch,
    test_accuracy (and validation_accuracy where recorded). A continuing method's epochs
    (:data:`CONTINUES`) are shifted by the epochs of the run it continues."""
    rows = []
    for path in metrics_jsons:
        r = json.loads(Path(path).read_text())
        for h in r["history"]:
            if h.get("test_accuracy") is None:
                continue
            row = {panel: r[panel], "method": r["method"], "seed": r["seed"], "epoch": h["epoch"],
                   "test_accuracy": h["test_accuracy"]}
            if h.get("validation_accuracy") is not None:
                row["validation_accuracy"] = h["validation_accuracy"]
            rows.append(row)
    df = pd.DataFrame(rows)
    for method, base in CONTINUES.items():
        if method in set(df.method) and base in set(df.method):
            last = df[df.method == base].groupby([panel, "seed"]).epoch.max().rename("offset")
            df = df.join(last, on=[panel, "seed"])
            df.loc[df.method == method, "epoch"] += df.loc[df.method == method, "offset"].fillna(0).astype(int)
            df = df.drop(columns="offset")
    return df


def write_curves(metrics_jsons: list[str], *, panel: str, panel_label: str, title: str, out_csv: str,
                 outputs: list[str]) -> pd.DataFrame:
    """``out_csv`` (the :func:`history_frame`) and the accuracy-vs-epoch figure (``outputs``)."""
    from soseleto.report.figures import accuracy_curves
    from soseleto.report.marks import generated_mark

    curves = history_frame(metrics_jsons, panel=panel)
    prov = provenance(inputs=[str(p) for p in metrics_jsons])
    write_csv(curves, out_csv, prov=prov)
    peak = curves.groupby([panel, "method", "epoch"]).test_accuracy.mean().groupby([panel, "method"])
    summary = pd.DataFrame({"peak": peak.max(), "at_epoch": peak.idxmax().map(lambda k: k[-1]), "last": peak.last()})
    log.info("mean test accuracy per method: peak, its epoch, last epoch\n%s", summary.round(4).to_string())
    fig = accuracy_curves(curves, panel=panel, panel_label=panel_label, title=title + generated_mark(metrics_jsons))
    for out in outputs:
        save_figure(fig, out, prov=prov)
    return curves
