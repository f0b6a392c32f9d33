"""The synthetic experiment's summary table and Figure 1, from the per-seed files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from soseleto.io import provenance, save_figure, write_csv

log = logging.getLogger(__name__)


def write_summary(metrics_jsons: list[str], out_csv: str) -> pd.DataFrame:
    """Stack the per-seed summaries into ``summary.csv`` (one row per seed)."""
    records = [json.loads(Path(p).read_text()) for p in metrics_jsons]
    df = pd.DataFrame([r["summary"] for r in records]).sort_values("seed")
    numeric = df.drop(columns="seed")
    log.info("median over %d seeds:\n%s", len(df), numeric.median().to_string())
    write_csv(df, out_csv, prov=provenance(records[0]["provenance"]["config"], seeds=df.seed.tolist()))
    return df


def write_figure1(points_csvs: list[str], history_csvs: list[str], seeds: list[int], *, threshold: float,
                  outputs: list[str]) -> None:
    """Figure 1 from the per-seed CSVs; panels (a)-(c) show the first seed."""
    from soseleto.report.figures import figure1

    points = pd.concat([pd.read_csv(p).assign(seed=s) for p, s in zip(points_csvs, seeds)], ignore_index=True)
    hist = pd.concat([pd.read_csv(p).assign(seed=s) for p, s in zip(history_csvs, seeds)], ignore_index=True)
    fig = figure1(points[points.seed == seeds[0]], hist, points, threshold=threshold, seed=seeds[0])
    for out in outputs:
        save_figure(fig, out, prov=provenance(seeds=list(seeds), threshold=threshold, inputs=list(points_csvs)))
