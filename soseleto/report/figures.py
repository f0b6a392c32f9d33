"""Figures of the paper, drawn from the CSV files the workflow writes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (CI and cluster nodes have no screen)

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from soseleto.metrics import threshold_curve

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
    fig, axes = plt.subplots(1, 5, figsize=(22, 5.6))
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
    # legends below the panels, in the axes' type size: inside they hid points or were too small to read
    ax_a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=10)

    for group, color in (("clean", "tab:blue"), ("noisy", "tab:orange")):
        h = histories[histories.group == group].groupby("epoch")
        mean, half = h.mean_alpha.mean(), h.ci95.mean()
        ax_d.plot(mean.index, mean.to_numpy(), color=color, label=group)
        ax_d.fill_between(mean.index, (mean - half).to_numpy(), (mean + half).to_numpy(), color=color, alpha=0.3)
    ax_d.set_xlabel("epoch"), ax_d.set_ylabel("mean $\\alpha$"), ax_d.legend(fontsize=10)
    ax_d.set_title(f"(d) mean $\\alpha$ (95% CI), {histories.seed.nunique()} seeds")

    thresholds = np.linspace(0.0, 1.0, 51)[1:]
    curves = pd.concat(
        [threshold_curve(g.alpha.to_numpy(), g.noisy.to_numpy(dtype=bool), thresholds) for _, g in all_points.groupby("seed")]
    ).groupby("threshold").mean()
    ax_e.plot(curves.index, curves.correct, label="accuracy (points accounted correctly)")
    ax_e.plot(curves.index, curves.recall, label="recall of noisy points")
    ax_e.plot(curves.index, curves.clean_kept, label="clean points kept", ls="--")
    ax_e.axvline(threshold, color="k", lw=0.8, ls=":", label=f"threshold of (b), (c): {threshold:g}")
    ax_e.set_xlabel("threshold on $\\alpha$"), ax_e.set_ylim(0, 1.02)
    ax_e.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    ax_e.set_title("(e) accuracy / recall vs threshold (mean over seeds)")
    fig.suptitle(f"SOSELETO on the synthetic noisy-label problem (panels a-c: seed {seed})")
    fig.tight_layout()
    return fig


def label_error_pr(curves: pd.DataFrame, points: pd.DataFrame | None = None, *, title_suffix: str = "") -> plt.Figure:
    """Precision-recall curves of flagging corrupted labels, one panel per noise level.

    Parameters
    ----------
    curves
        :func:`soseleto.metrics.pr_curve` outputs stacked, with columns ``method``, ``seed``,
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
    fig.suptitle(f"Flagging corrupted labels (dots: natural thresholds){title_suffix}")
    fig.tight_layout()
    return fig


# -- Appendix C: SVHN 0-9 -> MNIST 5-9 ------------------------------------------------------------
def figure3(per_class: pd.DataFrame, *, threshold: float, title_suffix: str = "",
            target_classes: tuple[int, ...] = (5, 6, 7, 8, 9)) -> plt.Figure:
    """Figure 3: percentage of source instances with ``alpha > threshold`` per source class.

    ``per_class`` has columns label, percent_good and seed (one row per class and seed); bars are
    the mean over seeds, error bars the standard deviation when there are several. Source classes
    that are not ``target_classes`` are blue, those that are orange (0-4 and 5-9 in the paper).
    """
    from matplotlib.patches import Patch

    g = per_class.groupby("label").percent_good
    mean, std = g.mean(), g.std(ddof=1).fillna(0.0)
    colors = ["tab:orange" if c in target_classes else "tab:blue" for c in mean.index]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.bar(mean.index.to_numpy(), mean.to_numpy(), yerr=std.to_numpy() if per_class.seed.nunique() > 1 else None,
           color=colors, capsize=3)
    ax.set_xticks(mean.index.to_numpy())
    ax.set_xlabel("source class"), ax.set_ylabel(f"% of instances with $\\alpha$ > {threshold:g}")
    ax.set_ylim(0, 100)
    ax.legend(handles=[Patch(color="tab:blue", label="not a target class"),
                       Patch(color="tab:orange", label="also a target class")], fontsize=9, loc="upper right")
    ax.set_title(f"Figure 3: good instances per class ({per_class.seed.nunique()} seed(s)){title_suffix}", fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(ax, images, *, ncols: int = 8) -> None:
    """Tile uint8 images ``(N, C, H, W)`` into one picture on ``ax`` (empty cells stay white)."""
    images = np.asarray(images)
    n, c, h, w = images.shape if len(images) else (0, 1, 1, 1)
    rows = max(1, int(np.ceil(n / ncols)))
    canvas = np.full((rows * (h + 2), ncols * (w + 2), 3), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        img = images[i].transpose(1, 2, 0)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, col * (w + 2) + 1 : col * (w + 2) + 1 + w] = img if c == 3 else img.repeat(3, 2)
    ax.imshow(canvas), ax.set_xticks([]), ax.set_yticks([])


def figure4(good, bad, *, threshold: float, bad_quantile: float, title_suffix: str = "") -> plt.Figure:
    """Figure 4: random "good" (left) and "bad" (right) source instances of class 0, uint8 ``(N, C, H, W)``."""
    rows = max(1, int(np.ceil(max(len(good), len(bad)) / 8)))
    # height from the rows of images (8 to a row, each panel 5 in wide), so no empty band above them
    fig, (ax_g, ax_b) = plt.subplots(1, 2, figsize=(10, 0.65 * rows + 1.0))
    image_grid(ax_g, good), image_grid(ax_b, bad)
    for ax in (ax_g, ax_b):
        ax.set_anchor("N")
    ax_g.set_title(f"good: random class-0 instances with $\\alpha$ > {threshold:g} ({len(good)} shown)", fontsize=9)
    ax_b.set_title(f"bad: random among the lowest {100 * bad_quantile:g}% of class 0 by $\\alpha$ ({len(bad)} shown)", fontsize=9)
    fig.suptitle(f"Figure 4: source instances labelled 0{title_suffix}", fontsize=10)
    fig.tight_layout()
    return fig


def figure5(images, alphas, indices, *, ncols: int = 8, title_suffix: str = "") -> plt.Figure:
    """Figure 5: the lowest-alpha source instances labelled 0, each titled with its index and alpha."""
    n = len(images)
    rows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(rows, ncols, figsize=(1.4 * ncols, 1.6 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, a, i in zip(axes.flat, np.asarray(images), alphas, indices):
        ax.imshow(img.transpose(1, 2, 0).squeeze(), cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(f"#{int(i)}\n$\\alpha$={float(a):.2f}", fontsize=7)
    fig.suptitle(f"Figure 5: the {n} lowest-$\\alpha$ source instances labelled 0{title_suffix}", fontsize=10)
    fig.tight_layout()
    return fig


NOISE_COLORS = {"0.3": "tab:blue", "0.4": "tab:green", "0.5": "tab:red"}  # as in the paper's Figure 2


def confusion_heatmaps(matrices: dict[str, np.ndarray]) -> plt.Figure:
    """One annotated heatmap per noise level; ``matrices`` maps a noise tag to a ``(K, K)`` matrix
    whose row ``i`` is the distribution of the noisy label given true label ``i``."""
    import seaborn as sns

    k = max(len(m) for m in matrices.values())
    side = max(5.4, 0.55 * k)  # inches per panel: room for 2-decimal cells of a readable size
    fig, axes = plt.subplots(1, len(matrices), figsize=((side + 0.8) * len(matrices), side), squeeze=False)
    for ax, (tag, m) in zip(axes[0], matrices.items()):
        sns.heatmap(m, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=k <= 20, fmt=".2f", annot_kws={"size": 9},
                    square=True, cbar=ax is axes[0, -1])
        ax.set_xlabel("noisy label"), ax.set_ylabel("true label")
        ax.set_title(f"noise {tag}: P(noisy label | true label)")
    fig.tight_layout()
    return fig


def figure2(curves: pd.DataFrame, *, data: str = "CIFAR-10") -> plt.Figure:
    """Figure 2: effective noise level vs fraction of the source kept when thresholding alpha.

    ``curves`` has columns noise, fraction_kept, effective_noise (one curve per noise level);
    ``data`` names the data set in the title.
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for noise, c in curves.groupby("noise"):
        tag = f"{noise:g}"
        ax.plot(c.fraction_kept, c.effective_noise, color=NOISE_COLORS.get(tag), label=f"{100 * noise:g}% noise")
    ax.axvline(0.5, color="k", lw=0.6, ls=":", label="half of the source kept")
    ax.set_xlabel("fraction of source kept ($\\alpha$ > threshold)")
    ax.set_ylabel("effective noise level (wrong labels among kept)")
    ax.set_xlim(0, 1), ax.set_ylim(0, None)
    ax.legend()
    ax.set_title(f"Noisy labels, {data}: samples kept by SOSELETO's $\\alpha$")
    fig.tight_layout()
    return fig


def accuracy_curves(curves: pd.DataFrame, *, panel: str, panel_label: str, title: str) -> plt.Figure:
    """Test accuracy against epoch: one panel per value of column ``panel`` (noise level, target
    size), one line per method (mean over seeds, band = min to max over seeds).

    ``curves`` has columns ``panel``, method, seed, epoch, test_accuracy.
    """
    values = sorted(curves[panel].unique())
    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 4.2), squeeze=False, sharey=True)
    colors = dict(zip(curves.method.unique(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    for ax, value in zip(axes[0], values):
        for method, c in curves[curves[panel] == value].groupby("method", sort=False):
            g = c.groupby("epoch").test_accuracy
            mean = g.mean()
            ax.plot(mean.index, 100 * mean.to_numpy(), color=colors[method], label=method, lw=1.6)
            ax.fill_between(mean.index, 100 * g.min().to_numpy(), 100 * g.max().to_numpy(), color=colors[method],
                            alpha=0.15, lw=0)
        ax.set_title(f"{panel_label} {value:g}" if isinstance(value, float) else f"{panel_label} {value}")
        ax.set_xlabel("epoch"), ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("test accuracy (%)")
    axes[0, -1].legend(fontsize=9, loc="lower right")
    fig.suptitle(f"{title} (mean over seeds; band: min to max)")
    fig.tight_layout()
    return fig


def alpha_histograms(alpha: pd.DataFrame, *, panel: str, panel_label: str, group: str, title: str,
                     bins: int = 44) -> plt.Figure:
    """Histograms of alpha, one panel per value of ``panel``, one colour per value of the boolean
    column ``group`` (e.g. ``noisy``: clean vs mislabeled), pooled over seeds, as densities."""
    values = sorted(alpha[panel].unique())
    fig, axes = plt.subplots(1, len(values), figsize=(5.2 * len(values), 4.0), squeeze=False)
    edges = np.linspace(min(0.0, alpha.alpha.min()), max(1.1, alpha.alpha.max()), bins + 1)
    names = {False: ("clean", GOOD), True: ("mislabeled", BAD)} if group == "noisy" else {
        True: ("relevant", GOOD), False: ("irrelevant", BAD)}
    for ax, value in zip(axes[0], values):
        a = alpha[alpha[panel] == value]
        for key, (name, color) in names.items():
            sel = a[a[group] == key].alpha
            if len(sel):
                ax.hist(sel, bins=edges, density=True, alpha=0.55, color=color,
                        label=f"{name} (n={len(sel)}, mean {sel.mean():.2f})")
        ax.set_title(f"{panel_label} {value:g}" if isinstance(value, float) else f"{panel_label} {value}")
        ax.set_xlabel("$\\alpha$"), ax.set_yscale("log"), ax.legend(fontsize=9)
    axes[0, 0].set_ylabel("density (log scale)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
