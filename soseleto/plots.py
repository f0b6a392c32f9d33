"""Figures of the paper, drawn from the CSV files the workflow writes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI and cluster nodes have no screen)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from soseleto.metrics import threshold_curve  # noqa: E402

GOOD, BAD = "#2ca02c", "#d62728"


def figure1(
    points: pd.DataFrame, histories: pd.DataFrame, all_points: pd.DataFrame, *, threshold: float, seed: int
) -> plt.Figure:
    """Figure 1 (a)-(e).

    Parameters
    ----------
    points
        ``alpha.csv`` of the seed shown in panels (a)-(c): columns x0, x1, label, noisy, alpha.
    histories
        ``history.csv`` of every seed stacked, with a ``seed`` column: epoch, group, mean_alpha, ci95.
    all_points
        ``alpha.csv`` of every seed stacked, with a ``seed`` column (panel (e) averages over seeds).
    """
    fig, axes = plt.subplots(1, 5, figsize=(22, 4.4))
    ax_a, ax_b, ax_c, ax_d, ax_e = axes
    noisy = points["noisy"].to_numpy(dtype=bool)
    kept = points["alpha"].to_numpy() >= threshold

    for label, marker in ((0, "^"), (1, "P")):
        sel = points["label"].to_numpy() == label
        ax_a.scatter(points.x0[sel], points.x1[sel], marker=marker, s=18, c=np.where(noisy[sel], BAD, "0.35"),
                     label=f"given label {label}")
    ax_a.set_title(f"(a) source points (red: label flipped, {noisy.sum()} of {len(points)})")

    clean = ~noisy
    ax_b.scatter(points.x0[clean], points.x1[clean], s=14, c=np.where(kept[clean], GOOD, BAD))
    ax_b.set_title(f"(b) clean: {int(kept[clean].sum())}/{int(clean.sum())} with $\\alpha \\geq$ {threshold:g}")
    ax_c.scatter(points.x0[noisy], points.x1[noisy], s=14, c=np.where(~kept[noisy], GOOD, BAD))
    ax_c.set_title(f"(c) noisy: {int((~kept[noisy]).sum())}/{int(noisy.sum())} with $\\alpha <$ {threshold:g}")
    for ax in (ax_a, ax_b, ax_c):
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlim(-1.05, 1.05), ax.set_ylim(-1.05, 1.05), ax.set_aspect("equal")
    ax_a.legend(loc="lower left", fontsize=7)

    for group, color in (("clean", "tab:blue"), ("noisy", "tab:orange")):
        h = histories[histories.group == group].groupby("epoch")
        mean, half = h.mean_alpha.mean(), h.ci95.mean()
        ax_d.plot(mean.index, mean.to_numpy(), color=color, label=group)
        ax_d.fill_between(mean.index, (mean - half).to_numpy(), (mean + half).to_numpy(), color=color, alpha=0.3)
    ax_d.set_xlabel("epoch"), ax_d.set_ylabel("mean $\\alpha$"), ax_d.legend()
    ax_d.set_title(f"(d) mean $\\alpha$ (95% CI), {histories.seed.nunique()} seeds")

    thresholds = np.linspace(0.0, 1.0, 51)[1:]
    curves = pd.concat(
        [threshold_curve(g.alpha.to_numpy(), g.noisy.to_numpy(dtype=bool), thresholds) for _, g in all_points.groupby("seed")]
    ).groupby("threshold").mean()
    ax_e.plot(curves.index, curves.correct, label="accuracy (points accounted correctly)")
    ax_e.plot(curves.index, curves.recall, label="recall of noisy points")
    ax_e.plot(curves.index, curves.clean_kept, label="clean points kept", ls="--")
    ax_e.axvline(threshold, color="k", lw=0.8, ls=":")
    ax_e.set_xlabel("threshold on $\\alpha$"), ax_e.set_ylim(0, 1.02), ax_e.legend(fontsize=7, loc="lower right")
    ax_e.set_title("(e) accuracy / recall vs threshold (mean over seeds)")
    fig.suptitle(f"SOSELETO on the synthetic noisy-label problem (panels a-c: seed {seed})")
    fig.tight_layout()
    return fig


def label_error_pr(curves: pd.DataFrame, points: pd.DataFrame | None = None) -> plt.Figure:
    """Precision-recall curves of flagging corrupted labels, one panel per noise level.

    Parameters
    ----------
    curves
        :func:`soseleto.detection.pr_curve` outputs stacked, with columns ``method``, ``seed``,
        ``recall``, ``precision`` and optionally ``noise``. Each method's curve is the mean over
        seeds of precision interpolated on a common recall grid.
    points
        Optional per-run rows of ``label_errors.csv`` (``method``, ``precision``, ``recall``,
        optionally ``noise``): each method's operating point at its natural threshold, averaged
        over seeds, drawn as a marker.
    """
    curves = curves if "noise" in curves.columns else curves.assign(noise="")
    levels = list(dict.fromkeys(curves["noise"]))
    fig, axes = plt.subplots(1, len(levels), figsize=(4.6 * len(levels), 4.2), squeeze=False)
    grid = np.linspace(0.0, 1.0, 101)
    for ax, level in zip(axes[0], levels):
        sub = curves[curves["noise"] == level]
        for i, (method, by_method) in enumerate(sub.groupby("method", sort=False)):
            color = f"C{i}"
            # precision at recall r: best precision reachable at recall >= r (the usual interpolation)
            interp = [
                np.interp(grid, g.recall.to_numpy(), np.maximum.accumulate(g.precision.to_numpy()[::-1])[::-1])
                for _, g in by_method.sort_values("recall", kind="stable").groupby("seed")
            ]
            ax.plot(grid, np.mean(interp, axis=0), color=color, label=f"{method} ({len(interp)} seeds)")
            if points is not None:
                pts = points if "noise" not in points.columns else points[points["noise"] == level]
                pts = pts[pts["method"] == method]
                if len(pts):
                    ax.plot(pts.recall.mean(), pts.precision.mean(), "o", color=color, mec="k")
        base = float(sub.precision[sub.recall >= 1.0].min()) if (sub.recall >= 1.0).any() else None
        if base is not None:
            ax.axhline(base, color="0.6", lw=0.8, ls=":", label="fraction corrupted")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall of corrupted labels"), ax.set_ylabel("precision")
        ax.set_title(f"noise {level}" if level != "" else "label-error detection")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Flagging corrupted labels (dots: natural thresholds)")
    fig.tight_layout()
    return fig
