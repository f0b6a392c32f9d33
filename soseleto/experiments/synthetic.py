"""Section 4.1 / Figure 1: the synthetic noisy-label problem in R^2.

Source: ``n_source`` points uniform in [-1, 1]^2, class = side of the y-axis (``x_0 > 0``), of which
``n_noisy`` chosen at random carry the wrong label. Target: ``n_target`` fresh clean points.
SOSELETO runs in noisy-label mode (shared classifier) on an MLP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from soseleto.config import SyntheticConfig
from soseleto.core.device import resolve_device
from soseleto.core.loop import Labeled, train
from soseleto.core.models import build
from soseleto.core.rng import generator
from soseleto.core.soseleto import Soseleto
from soseleto.io import provenance, write_csv, write_json
from soseleto.metrics import detection_metrics, group_mean_ci

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
    features, (head,) = build("mlp", (2,), [2], seed=seed, hidden=cfg.hidden, depth=cfg.depth)
    trainer = Soseleto(features, head, None, n_source=cfg.n_source, n_target=cfg.n_target, cfg=cfg.trainer, device=dev)
    history = [trainer.alpha.cpu().numpy().copy()]
    train(trainer, data.source, data.target, schedule=cfg.trainer.schedule, seed=seed, device=dev,
          on_epoch=lambda _: history.append(trainer.alpha.cpu().numpy().copy()), name="synthetic")
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
    """The per-seed row of ``summary.csv`` (correct_at_t, mean alphas of clean and noisy points, counts)."""
    alpha, noisy = points["alpha"].to_numpy(), points["noisy"].to_numpy(dtype=bool)
    m = detection_metrics(alpha, noisy, threshold=threshold)
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


def run_and_save(cfg: SyntheticConfig, *, seed: int, device: str, outputs: dict[str, str]) -> dict:
    """Run one seed; write ``outputs['points']`` (alpha per point), ``outputs['history']`` (mean
    alpha per epoch) and ``outputs['metrics']`` (the seed's summary)."""
    log.info("synthetic seed %d on %s: %s", seed, resolve_device(device), cfg)
    run = run_synthetic(cfg, seed=seed, device=device)
    points = points_table(run)
    summary = seed_summary(points, seed=seed, threshold=cfg.threshold, target_accuracy=run.target_accuracy)
    prov = provenance(cfg, seed=seed, device=str(resolve_device(device)))
    write_csv(points, outputs["points"], prov=prov)
    write_csv(history_table(run), outputs["history"], prov=prov)
    write_json({"summary": summary}, outputs["metrics"], prov=prov)
    log.info("seed %d: %s", seed, summary)
    return summary
