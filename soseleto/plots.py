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


NOISE_COLORS = {"0.3": "tab:blue", "0.4": "tab:green", "0.5": "tab:red"}  # as in the paper's Figure 2


def confusion_heatmaps(matrices: dict[str, np.ndarray]) -> plt.Figure:
    """One annotated heatmap per noise level; ``matrices`` maps a noise tag to a ``(K, K)`` matrix
    whose row ``i`` is the distribution of the noisy label given true label ``i``."""
    import seaborn as sns

    fig, axes = plt.subplots(1, len(matrices), figsize=(6.2 * len(matrices), 5.4), squeeze=False)
    for ax, (tag, m) in zip(axes[0], matrices.items()):
        sns.heatmap(m, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", annot_kws={"size": 6},
                    square=True, cbar=ax is axes[0, -1])
        ax.set_xlabel("noisy label"), ax.set_ylabel("true label")
        ax.set_title(f"noise {tag}: P(noisy label | true label)")
    fig.tight_layout()
    return fig


def figure2(curves: pd.DataFrame) -> plt.Figure:
    """Figure 2: effective noise level vs fraction of the source kept when thresholding alpha.

    ``curves`` has columns noise, fraction_kept, effective_noise (one curve per noise level).
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for noise, c in curves.groupby("noise"):
        tag = f"{noise:g}"
        ax.plot(c.fraction_kept, c.effective_noise, color=NOISE_COLORS.get(tag), label=f"{100 * noise:g}% noise")
    ax.axvline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xlabel("fraction of source kept ($\\alpha$ > threshold)")
    ax.set_ylabel("effective noise level (wrong labels among kept)")
    ax.set_xlim(0, 1), ax.set_ylim(0, None)
    ax.legend()
    ax.set_title("Noisy CIFAR-10: samples kept by SOSELETO's $\\alpha$")
    fig.tight_layout()
    return fig
