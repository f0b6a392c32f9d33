"""Table 1 and Figure 2 from the per-run outputs of :mod:`soseleto.experiments.noisy`.

``table1.csv`` is tidy (noise, method, seed, accuracy as a fraction); ``table1.md`` shows the mean
± sample standard deviation over seeds, in percent, beside the paper's numbers.
``table1_peers.csv``/``.md`` are the same for every method run, the peers of the registry
(:mod:`soseleto.config.methods`) included, side by side (beyond the paper). Figure 2 plots,
for thresholds t on alpha, the fraction of the source kept (alpha > t) against the fraction of the
kept samples whose label is wrong.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from soseleto.config import methods as registry
from soseleto.io import provenance, save_figure, write_csv, write_markdown

log = logging.getLogger(__name__)

# Table 1 of the paper, test accuracy in percent. The two competitors are numbers the paper copies
# from Xiao et al. (2015); they used 10K clean samples, and we do not run them.
PAPER_TABLE1: dict[float, dict[str, float]] = {
    0.3: {"noisy_baseline": 65.57, "sukhbaatar": 69.73, "xiao": 69.81, "soseleto": 72.41},
    0.4: {"noisy_baseline": 62.38, "sukhbaatar": 66.66, "xiao": 66.76, "soseleto": 69.98},
    0.5: {"noisy_baseline": 57.36, "sukhbaatar": 63.39, "xiao": 63.00, "soseleto": 66.33},
}
# the competitors the paper quotes from Xiao et al. (2015), which are not run here
REPORTED = {"sukhbaatar": "Sukhbaatar et al. (2014), 10K clean", "xiao": "Xiao et al. (2015), 10K clean"}


def label(method: str) -> str:
    """A method's name in the tables: the registry's label, or a quoted competitor's."""
    return REPORTED.get(method) or registry.get("noisy", method).label


def paper_order() -> tuple[str, ...]:
    """The rows of ``table1.md``: the paper's methods and the ablation, in registry order."""
    return registry.names("noisy", rows=("paper", "ablation"))


COLUMNS = ["noise", "method", "seed", "accuracy", "accuracy_at_best_validation", "best_epoch", "realised_noise"]


def collect(metrics_jsons: list[str]) -> tuple[pd.DataFrame, str]:
    """The tidy table -- one row per run: noise, method, seed, accuracy at the end of training and
    at the epoch of best validation accuracy (NaN without validation), that epoch -- and what the
    runs were trained on (:func:`data_name`)."""
    records = [json.loads(Path(p).read_text()) for p in metrics_jsons]
    df = pd.DataFrame([{k: r.get(k, np.nan) for k in COLUMNS} for r in records])
    df["order"] = df.method.map({m: i for i, m in enumerate(registry.names("noisy"))})
    df = df.sort_values(["noise", "order", "seed"]).drop(columns="order").reset_index(drop=True)
    return df, data_name(records)


def data_name(records: list[dict]) -> str:
    """``paper`` for real CIFAR-10, ``generated cifar10`` for its stand-in, else the data set's tag."""
    from soseleto.config import DATASET_NAMES
    from soseleto.paths import dataset_tag

    names = set()
    for r in records:
        cfg = r["provenance"]["config"]
        named = cfg["split"]["dataset"].lower() in DATASET_NAMES
        name = dataset_tag(cfg["split"]["dataset"], None)
        names.add(f"generated {name}" if named and cfg["data"]["source"] == "generated"
                  else ("paper" if name == "cifar10" else name))
    if len(names) != 1:
        raise ValueError(f"runs were made on different data {sorted(names)}; rerun them on one")
    return names.pop()


def summarize(table: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """Per (noise, method): ``n`` seeds, ``mean`` and ``std`` (sample std, ddof=1; NaN for one
    seed) of ``column`` (an accuracy), in percent."""
    g = table.assign(acc=100 * table[column]).groupby(["noise", "method"], sort=False).acc
    return pd.DataFrame({"n": g.size(), "mean": g.mean(), "std": g.std(ddof=1)}).reset_index()


def render_markdown(summary: pd.DataFrame, *, data: str = "paper", title: str | None = None) -> str:
    """Table 1 as markdown: one row per noise level; ours (mean ± std), beside the paper's numbers
    (the paper's methods only) when the runs were on CIFAR-10."""
    paper_cols = data == "paper"
    methods = [m for m in paper_order() if m in set(summary.method)]
    n_seeds = sorted(set(summary.n))
    head = ["noise"]
    for m in methods:
        head.append(f"{label(m)} (ours)")
        if paper_cols and m in ("noisy_baseline", "soseleto"):
            head.append(f"{label(m)} (paper)")
    head += [f"{label(m)} (reported)" for m in REPORTED] if paper_cols else []
    lines = ([f"### {title}", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for noise, rows in summary.groupby("noise", sort=True):
        paper = _paper_row(noise)
        cells = [f"{100 * noise:g}%"]
        by_method = rows.set_index("method")
        for m in methods:
            r = by_method.loc[m] if m in by_method.index else None
            cells.append("—" if r is None else _mean_std(r["mean"], r["std"]))
            if paper_cols and m in ("noisy_baseline", "soseleto"):
                cells.append(_num(paper.get(m)))
        cells += [_num(paper.get(m)) for m in REPORTED] if paper_cols else []
        lines.append("| " + " | ".join(cells) + " |")
    seeds = "/".join(str(n) for n in n_seeds)
    where = _test_set(data)
    note = (f"Test accuracy (%) on {where}; ours: mean ± sample std over {seeds} seed(s).")
    if paper_cols:
        note += (" Paper: Table 1 of the SOSELETO paper (5K clean target). Reported: the competitors' numbers as "
                 "the paper quotes them from Xiao et al. (2015), with 10K clean samples; not rerun here.")
    return "\n".join(lines + ["", note]) + "\n"


def render_side_by_side(summary: pd.DataFrame, *, data: str = "paper", realised: pd.Series | None = None) -> str:
    """Every method run, one column each (mean ± std, percent), one row per noise level (with
    ``realised``, noise level -> fraction of wrong source labels, beside it)."""
    methods = [m for m in registry.names("noisy") if m in set(summary.method)]
    head = ["noise"] + [f"{label(m)} (`{m}`)" for m in methods]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for noise, rows in summary.groupby("noise", sort=True):
        by_method = rows.set_index("method")
        cells = [_noise_cell(noise, realised)] + [
            _mean_std(by_method.loc[m, "mean"], by_method.loc[m, "std"]) if m in by_method.index else "—" for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = "/".join(str(n) for n in sorted(set(summary.n)))
    where = _test_set(data)
    lines += [
        "",
        (f"Test accuracy (%) on {where}, mean ± sample std over {seeds} seed(s); every method on "
         "the same noisy source, clean target, seeds and network. The paper's numbers are in table1.md."),
    ]
    return "\n".join(lines) + "\n"


def _noise_cell(noise: float, realised: pd.Series | None) -> str:
    if realised is None or pd.isna(realised.get(noise)):
        return f"{100 * noise:g}%"
    return f"{100 * noise:g}% ({100 * realised[noise]:.1f}% wrong)"


def alternatives(methods) -> list[str]:
    """The methods a user would choose instead of SOSELETO: the paper's other rows and the peers
    (not SOSELETO's own rows: its ablation and variants)."""
    return [m for m in registry.names("noisy", rows=("paper", "peer")) if m in set(methods) and m != "soseleto"]


def leaders(table: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """Per noise level: SOSELETO against the strongest alternative (:func:`alternatives`, highest
    mean of ``column``). ``difference`` and ``difference_std``: mean and sample std over seeds of the
    per-seed difference (same seed: same split, initialisation and batches), in points; ``spread``:
    the larger of the two methods' seed std; ``verdict``: ahead/behind when the mean difference
    exceeds the spread, else within the seed spread."""
    rows = []
    for noise, t in table.groupby("noise", sort=True):
        acc = 100 * t.pivot_table(index="seed", columns="method", values=column)
        others = [m for m in alternatives(acc.columns) if acc[m].notna().all()]
        if "soseleto" not in acc.columns or not others:
            continue
        best = max(others, key=lambda m: acc[m].mean())
        diff = (acc["soseleto"] - acc[best]).dropna()
        spread = float(max(acc["soseleto"].std(ddof=1), acc[best].std(ddof=1)))
        mean = float(diff.mean())
        verdict = ("ahead" if mean > spread else "behind" if mean < -spread else "within the seed spread")
        rows.append({"noise": noise, "soseleto": acc["soseleto"].mean(), "strongest": best, "strongest_accuracy":
                     acc[best].mean(), "difference": mean, "difference_std": float(diff.std(ddof=1)),
                     "spread": spread, "seeds": len(diff), "verdict": verdict})
    return pd.DataFrame(rows)


def render_leaders(lead: pd.DataFrame, *, when: str) -> str:
    """:func:`leaders` as a markdown table."""
    lines = [f"SOSELETO against the strongest alternative, {when}:", "",
             "| noise | SOSELETO | strongest alternative | its accuracy | SOSELETO − it (points) | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in lead.itertuples():
        lines.append(f"| {100 * r.noise:g}% | {r.soseleto:.2f} | {label(r.strongest)} | {r.strongest_accuracy:.2f} | "
                     f"{r.difference:+.2f} ± {r.difference_std:.2f} | {r.verdict} (seed spread {r.spread:.2f}) |")
    lines += ["", "The difference is paired by seed (mean ± sample std over seeds); the strongest alternative is "
              "the other method of highest mean accuracy at that noise level (not SOSELETO's own ablation)."]
    return "\n".join(lines) + "\n"


def write_table1(metrics_jsons: list[str], out_csv: str, out_md: str, *, side_by_side: bool = False) -> pd.DataFrame:
    """``table1.csv`` (tidy, fractions) and ``table1.md`` (rendered, percent): beside the paper's
    numbers, or with ``side_by_side`` every method in its own column (``table1_peers``). With a
    validation split, the markdown has a second table: every method at the epoch of its best
    validation accuracy, as a practitioner who stops early would get."""
    table, data = collect(metrics_jsons)
    prov = provenance(inputs=[str(p) for p in metrics_jsons], data=data)
    write_csv(table, out_csv, prov=prov)
    realised = table.groupby("noise").realised_noise.mean() if "realised_noise" in table else None
    if side_by_side:
        md = render_side_by_side(summarize(table), data=data, realised=realised)
        if not (lead := leaders(table)).empty:
            md += "\n" + render_leaders(lead, when="at the end of training")
    else:
        title = None if data == "paper" and table.accuracy_at_best_validation.isna().all() else (
            "At the end of training (as in the paper)")
        md = render_markdown(summarize(table), data=data, title=title)
    if table.accuracy_at_best_validation.notna().all():
        best = summarize(table, "accuracy_at_best_validation")
        md += "\n" + (render_side_by_side(best, data=data, realised=realised) if side_by_side else render_markdown(
            best, data=data, title="At the epoch of best validation accuracy (early stopping on the clean validation images)"))
        if side_by_side and not (lead := leaders(table, "accuracy_at_best_validation")).empty:
            md += "\n" + render_leaders(lead, when="at each method's epoch of best validation accuracy")
    write_markdown(md, out_md, prov=prov)
    log.info("table 1:\n%s", md)
    return table


# -- Figure 2 ---------------------------------------------------------------------------------------
def kept_noise_curve(alpha: np.ndarray, noisy: np.ndarray) -> pd.DataFrame:
    """Effective noise of the samples kept by thresholding ``alpha``, for every distinct threshold.

    Parameters
    ----------
    alpha : (N,) float, the final weights of the source samples.
    noisy : (N,) bool, True where the label is wrong.

    Returns
    -------
    One row per threshold ``t`` in ``{-inf} ∪ (distinct alpha values except the largest)``, i.e.
    every way of keeping ``alpha > t`` that keeps something: ``threshold``, ``fraction_kept``
    (kept / N) and ``effective_noise`` (wrong labels among the kept). Rows run from keeping all
    (fraction 1) downwards.
    """
    alpha, noisy = np.asarray(alpha, dtype=float), np.asarray(noisy, dtype=bool)
    if alpha.shape != noisy.shape or alpha.ndim != 1 or len(alpha) == 0:
        raise ValueError(f"alpha {alpha.shape} and noisy {noisy.shape} must be 1-D, non-empty, of equal length")
    order = np.argsort(alpha, kind="stable")
    a, wrong = alpha[order], noisy[order]
    thresholds = np.concatenate([[-np.inf], np.unique(a)[:-1]])
    dropped = np.searchsorted(a, thresholds, side="right")  # samples with alpha <= t
    wrong_dropped = np.concatenate([[0], np.cumsum(wrong)])[dropped]
    kept = len(a) - dropped
    return pd.DataFrame({"threshold": thresholds, "fraction_kept": kept / len(a),
                         "effective_noise": (wrong.sum() - wrong_dropped) / kept})


def mean_curve(curves: list[pd.DataFrame], grid: np.ndarray) -> pd.DataFrame:
    """Average several :func:`kept_noise_curve` over seeds on a common grid of ``fraction_kept``.

    Each curve is linearly interpolated in ``fraction_kept``; grid points outside a curve's range
    (fewer kept than its highest threshold allows) are left out of that curve's mean.
    """
    ys = []
    for c in curves:
        x, y = c.fraction_kept.to_numpy()[::-1], c.effective_noise.to_numpy()[::-1]  # increasing x
        ys.append(np.interp(grid, x, y, left=np.nan, right=np.nan))
    ys = np.array(ys)
    n = (~np.isnan(ys)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(n > 0, np.nansum(ys, axis=0) / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"fraction_kept": grid, "effective_noise": mean, "n_seeds": n})


def figure2_data(alpha_csvs: list[str], noises: list[float], *, points: int = 100) -> pd.DataFrame:
    """Mean curve per noise level over the given runs (``alpha_csvs[i]`` belongs to ``noises[i]``)."""
    grid = np.linspace(0, 1, points + 1)[1:]
    by_noise: dict[float, list[pd.DataFrame]] = {}
    for path, noise in zip(alpha_csvs, noises):
        a = pd.read_csv(path)
        by_noise.setdefault(float(noise), []).append(kept_noise_curve(a.alpha.to_numpy(), a.noisy.to_numpy(dtype=bool)))
    return pd.concat([mean_curve(c, grid).assign(noise=n) for n, c in sorted(by_noise.items())], ignore_index=True)[
        ["noise", "fraction_kept", "effective_noise", "n_seeds"]]


def write_figure2(alpha_csvs: list[str], noises: list[float], *, out_csv: str, outputs: list[str]) -> pd.DataFrame:
    """Figure 2 (PNG/PDF) and its data (``figure2.csv``: the mean curve per noise level)."""
    from soseleto.report.figures import figure2

    curves = figure2_data(alpha_csvs, noises)
    prov = provenance(inputs=[str(p) for p in alpha_csvs], noises=list(noises))
    write_csv(curves, out_csv, prov=prov)
    half = curves[np.isclose(curves.fraction_kept, 0.5)]
    for row in half.itertuples():
        log.info("noise %g: effective noise %.3f when keeping the top half by alpha", row.noise, row.effective_noise)
    fig = figure2(curves, data=data_label(alpha_csvs))
    for out in outputs:
        save_figure(fig, out, prov=prov)
    return curves


def data_label(paths: list[str]) -> str:
    """The data set of the runs that wrote ``paths``, from their provenance, for a figure title:
    ``CIFAR-10``, a data set tag, or either with :data:`~soseleto.report.marks.GENERATED`."""
    from soseleto.report.marks import generated_mark, provenance_of

    records = [{"provenance": p} for p in map(provenance_of, paths) if p and "split" in (p.get("config") or {})]
    if not records:
        return "data unknown (no provenance)"
    name = data_name(records)
    return {"paper": "CIFAR-10"}.get(name, name.removeprefix("generated ")) + generated_mark(paths)


def _test_set(data: str) -> str:
    return "the CIFAR-10 test set" if data == "paper" else f"the held-out test images ({data})"


def _paper_row(noise: float) -> dict[str, float]:
    for level, row in PAPER_TABLE1.items():
        if np.isclose(level, noise):
            return row
    return {}


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.2f}" if np.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def read_confusion(path: str) -> np.ndarray:
    """The ``(K, K)`` matrix of a ``confusion.csv`` written by :func:`soseleto.experiments.noisy.write_split`."""
    return pd.read_csv(path, index_col="true_label").to_numpy()


def write_confusion_figure(confusion_csvs: list[str], noise_levels: list[float], outputs: list[str]) -> None:
    """One heatmap panel per noise level."""
    from soseleto.paths import noise_tag
    from soseleto.report.figures import confusion_heatmaps

    matrices = {noise_tag(n): read_confusion(p) for n, p in zip(noise_levels, confusion_csvs)}
    prov = provenance(noise_levels=list(noise_levels), inputs=[str(p) for p in confusion_csvs])
    fig = confusion_heatmaps(matrices)
    for out in outputs:
        save_figure(fig, out, prov=prov)


def write_alpha_histograms(alpha_csvs: list[str], noises: list[float], *, data: str, outputs: list[str]) -> None:
    """Histograms of SOSELETO's alpha for the clean and the mislabeled source samples, one panel
    per noise level (``alpha_csvs[i]`` belongs to ``noises[i]``), pooled over seeds."""
    from soseleto.report.figures import alpha_histograms
    from soseleto.report.marks import generated_mark

    alpha = pd.concat([pd.read_csv(p).assign(noise=float(n)) for p, n in zip(alpha_csvs, noises)], ignore_index=True)
    fig = alpha_histograms(alpha, panel="noise", panel_label="noise", group="noisy",
                           title=f"SOSELETO's alpha at the end of training ({data}): clean vs mislabeled source "
                                 f"samples{generated_mark(alpha_csvs)}")
    prov = provenance(inputs=[str(p) for p in alpha_csvs], noises=list(noises))
    for out in outputs:
        save_figure(fig, out, prov=prov)

