"""Section 4.1 / Figure 1: the synthetic noisy-label problem in R^2.

Source: ``n_source`` points uniform in [-1, 1]^2, class = side of the y-axis (``x_0 > 0``), of which
``n_noisy`` chosen at random carry the wrong label. Target: ``n_target`` fresh clean points.
SOSELETO runs in noisy-label mode (shared classifier) on an MLP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soseleto.config import SyntheticConfig, from_dict, to_dict
from soseleto.devices import resolve_device
from soseleto.metrics import group_mean_ci, threshold_metrics
from soseleto.io import provenance, save_figure, write_csv, write_json
from soseleto.models import build_classifier, build_features
from soseleto.rng import generator, seeded
from soseleto.trainer import Labeled, Soseleto

log = logging.getLogger(__name__)


@dataclass
class SyntheticData:
    source: Labeled  # noisy labels
    y_true: torch.Tensor  # (n_source,) clean labels of the source
    noisy: torch.Tensor  # (n_source,) bool, True where the label was flipped
    target: Labeled  # clean


@dataclass
class SyntheticRun:
    data: SyntheticData
    alpha_history: np.ndarray  # (epochs + 1, n_source): alpha after each epoch, row 0 = initial
    target_accuracy: float  # accuracy of the trained classifier on a fresh clean test set


def make_synthetic(n_source: int = 500, n_noisy: int = 100, n_target: int = 50, *, seed: int) -> SyntheticData:
    """Draw the source (with ``n_noisy`` flipped labels) and the clean target set."""
    gen = generator(seed)
    xs = torch.rand(n_source, 2, generator=gen) * 2 - 1  # (N, 2) uniform in [-1, 1]^2
    y_true = (xs[:, 0] > 0).long()
    noisy = torch.zeros(n_source, dtype=torch.bool)
    noisy[torch.randperm(n_source, generator=gen)[:n_noisy]] = True
    ys = torch.where(noisy, 1 - y_true, y_true)
    xt = torch.rand(n_target, 2, generator=gen) * 2 - 1
    return SyntheticData(Labeled(xs, ys), y_true, noisy, Labeled(xt, (xt[:, 0] > 0).long()))


def run_synthetic(cfg: SyntheticConfig, *, seed: int, device: str = "auto") -> SyntheticRun:
    """Train SOSELETO on the synthetic problem; record alpha after every epoch."""
    dev = resolve_device(device)
    data = make_synthetic(cfg.n_source, cfg.n_noisy, cfg.n_target, seed=seed)
    with seeded(seed):
        features, dim = build_features("mlp", (2,), hidden=cfg.hidden, depth=cfg.depth)
        head = build_classifier(dim, 2)
    trainer = Soseleto(features, head, None, n_source=cfg.n_source, n_target=cfg.n_target, cfg=cfg.trainer, device=dev)
    history = [trainer.alpha.cpu().numpy().copy()]
    trainer.fit(data.source, data.target, seed=seed, on_epoch=lambda t, _: history.append(t.alpha.cpu().numpy().copy()))
    test = make_synthetic(2000, 0, 1, seed=seed + 10_000).source
    return SyntheticRun(data, np.stack(history), trainer.accuracy(test))


def points_table(run: SyntheticRun) -> pd.DataFrame:
    """One row per source point: coordinates, given and true label, noisy flag, final alpha."""
    x = run.data.source.x.numpy()
    return pd.DataFrame(
        {
            "index": np.arange(len(x)),
            "x0": x[:, 0],
            "x1": x[:, 1],
            "label": run.data.source.y.numpy(),
            "true_label": run.data.y_true.numpy(),
            "noisy": run.data.noisy.numpy(),
            "alpha": run.alpha_history[-1],
        }
    )


def history_table(run: SyntheticRun) -> pd.DataFrame:
    """Mean alpha of clean and noisy points after each epoch with the 95% CI half-width."""
    noisy = run.data.noisy.numpy()
    rows = []
    for group, mask in (("clean", ~noisy), ("noisy", noisy)):
        mean, half = group_mean_ci(run.alpha_history, mask)
        rows.append(pd.DataFrame({"epoch": np.arange(len(mean)), "group": group, "mean_alpha": mean, "ci95": half}))
    return pd.concat(rows, ignore_index=True)


def seed_summary(points: pd.DataFrame, *, seed: int, threshold: float, target_accuracy: float) -> dict:
    """The per-seed row of ``summary.csv`` (see issue: correct_at_t, mean alphas, counts)."""
    alpha, noisy = points["alpha"].to_numpy(), points["noisy"].to_numpy(dtype=bool)
    m = threshold_metrics(alpha, noisy, threshold)
    t = f"{threshold:g}"
    return {
        "seed": seed,
        f"correct_at_{t}": m["correct"],
        "clean_mean_alpha": float(alpha[~noisy].mean()),
        "noisy_mean_alpha": float(alpha[noisy].mean()) if noisy.any() else float("nan"),
        f"noisy_below_{t}": m["recall"],
        f"clean_above_{t}": m["clean_kept"],
        "n_noisy": int(noisy.sum()),
        "n_clean": int((~noisy).sum()),
        "test_accuracy": target_accuracy,
    }


def config_from_mapping(mapping: dict) -> SyntheticConfig:
    """The ``synthetic:`` section of the workflow config (``seeds`` is the workflow's business)."""
    return from_dict(SyntheticConfig, {k: v for k, v in mapping.items() if k != "seeds"}, where="synthetic.")


def run_and_save(
    mapping: dict, *, seed: int, device: str, points_csv: str, history_csv: str, metrics_json: str
) -> dict:
    """Run one seed and write its alpha-per-point CSV, alpha history CSV and metrics JSON."""
    cfg = config_from_mapping(mapping)
    log.info("synthetic seed %d on %s: %s", seed, resolve_device(device), cfg)
    run = run_synthetic(cfg, seed=seed, device=device)
    points = points_table(run)
    summary = seed_summary(points, seed=seed, threshold=cfg.threshold, target_accuracy=run.target_accuracy)
    prov = provenance(to_dict(cfg), seed=seed, device=str(resolve_device(device)))
    write_csv(points, points_csv, prov=prov)
    write_csv(history_table(run), history_csv, prov=prov)
    write_json({"summary": summary}, metrics_json, prov=prov)
    log.info("seed %d: %s", seed, summary)
    return summary


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
    from soseleto.plots import figure1

    points = pd.concat([pd.read_csv(p).assign(seed=s) for p, s in zip(points_csvs, seeds)], ignore_index=True)
    hist = pd.concat([pd.read_csv(p).assign(seed=s) for p, s in zip(history_csvs, seeds)], ignore_index=True)
    fig = figure1(points[points.seed == seeds[0]], hist, points, threshold=threshold, seed=seeds[0])
    for out in outputs:
        save_figure(fig, out, prov=provenance(seeds=list(seeds), threshold=threshold, inputs=list(points_csvs)))
