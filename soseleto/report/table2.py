"""Table 2 and Appendix C (Figures 3-5) from the per-run files of :mod:`soseleto.experiments.transfer`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from soseleto.config import methods as registry
from soseleto.core.rng import generator
from soseleto.io import provenance, save_figure, write_csv, write_markdown
from soseleto.metrics import auroc
from soseleto.report.marks import GENERATED

log = logging.getLogger(__name__)

# the competitors the paper quotes (not run here): method key -> (label, uses unlabelled target data)
REPORTED = {
    "vinyals": ("Vinyals et al. (2016)", True),
    "vinyals_ft": ("Fine-tuned variant of Vinyals et al. (2016)", True),
    "luo": ("Luo et al. (2017)", True),
    "luo_label_efficient": ("Label-efficient version of Luo et al. (2017)", True),
}


def methods() -> dict[str, tuple[str, bool]]:
    """Every row Table 2 may show, in order: the registry's transfer methods, then the quoted ones
    (method key -> (label, whether it uses unlabelled target data))."""
    return {**{m.name: (m.label, m.uses_unlabelled) for m in registry.methods("transfer")
               if m.row != "stage"}, **REPORTED}

# The paper's Table 2 (accuracy in %, MNIST test digits 5-9) and section 4.3's two-stage remark.
PAPER_TABLE2: dict[tuple[str, int], tuple[float, str]] = {
    ("target_only", 20): (80.1, ""), ("target_only", 25): (84.0, ""),
    ("fine_tuning", 20): (80.2, ""), ("fine_tuning", 25): (83.0, ""),
    ("soseleto", 20): (83.2, ""), ("soseleto", 25): (87.9, ""),
    ("two_stage", 25): (92.0, "lower bound: the paper says 'above 92%'"),
    ("vinyals", 20): (56.6, ""), ("vinyals", 25): (51.3, ""),
    ("vinyals_ft", 25): (82.7, ""),
    ("luo", 20): (80.4, ""), ("luo", 25): (83.1, ""),
    ("luo_label_efficient", 20): (94.2, ""), ("luo_label_efficient", 25): (95.0, ""),
}
PAPER_APPENDIX_C = 90.3  # SVHN 0-9 -> MNIST 5-9 accuracy in %


def read_metrics(paths: Sequence[str | Path]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def data_source(records: list[dict]) -> str:
    """What the runs were trained on, from their provenance: ``paper`` (SVHN -> MNIST, the real
    sets), ``generated`` (stand-ins) or a description of the task (other data)."""
    found = set()
    for r in records:
        cfg = r["provenance"]["config"]
        task, source = cfg["task"], cfg["data"]["source"]
        names = (task["source"]["dataset"], task["target"]["dataset"])
        if names[0].lower() in ("svhn", "mnist") and names[1].lower() in ("svhn", "mnist"):
            found.add(source if source == "generated" else ("paper" if names == ("svhn", "mnist") else "other"))
        else:
            found.add(describe_task(task))
    if len(found) != 1:
        raise ValueError(f"runs were made on different data {sorted(found)}; rerun them on one")
    return found.pop()


def describe_task(task: dict) -> str:
    """``'mnist5k 0-4 → mnist5k 5-9'``: the data sets (as in result paths) and their classes."""
    from soseleto.paths import dataset_tag

    def side(s: dict) -> str:
        name = dataset_tag(s["dataset"], None)
        c = s["classes"]
        run = c == list(range(c[0], c[0] + len(c)))
        return f"{name} {c[0]}-{c[-1]}" if run else f"{name} {','.join(map(str, c))}"

    return f"{side(task['source'])} → {side(task['target'])}"


# -- Table 2 -------------------------------------------------------------------------------------
def table2_tidy(records: list[dict]) -> pd.DataFrame:
    """One row per measured run (``source='measured'``) and per number of the paper (``source='paper'``).

    Columns: method, label, uses_unlabelled, n_target, seed, accuracy_pct, source, note.
    """
    rows = [{"method": r["method"], "n_target": int(r["n_target"]), "seed": int(r["seed"]),
             "accuracy_pct": 100.0 * float(r["accuracy"]), "source": "measured", "note": ""} for r in records]
    rows += [{"method": m, "n_target": n, "seed": None, "accuracy_pct": acc, "source": "paper", "note": note}
             for (m, n), (acc, note) in PAPER_TABLE2.items()]
    df = pd.DataFrame(rows)
    known = methods()
    unknown = sorted(set(df.method) - set(known))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown} in the run metrics; expected {sorted(known)}")
    df.insert(1, "label", df.method.map(lambda m: known[m][0]))
    df.insert(2, "uses_unlabelled", df.method.map(lambda m: known[m][1]))
    df["seed"] = df.seed.astype("Int64")
    order = {m: i for i, m in enumerate(known)}
    return df.sort_values(["source", "method", "n_target", "seed"], key=lambda s: s.map(order) if s.name == "method" else s,
                          ignore_index=True)


def table2_summary(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed) and seed count of the measured runs per (method, n_target)."""
    measured = tidy[tidy.source == "measured"]
    g = measured.groupby(["method", "n_target"]).accuracy_pct
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n_seeds": g.size()}).reset_index()
    return out


def table2_markdown(tidy: pd.DataFrame, *, data: str) -> str:
    """Table 2 as Markdown: mean ± std over seeds beside the paper's numbers."""
    summary = table2_summary(tidy).set_index(["method", "n_target"])
    paper = tidy[tidy.source == "paper"].set_index(["method", "n_target"])
    sizes = sorted(tidy.n_target.unique())
    head = ["Method", "Uses unlabelled data"] + [f"n_t = {n}: {who}" for n in sizes for who in ("measured", "paper")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, (label, unlabelled) in methods().items():
        if not any((method, n) in summary.index or (method, n) in paper.index for n in sizes):
            continue
        cells = [label, "yes" if unlabelled else "no"]
        for n in sizes:
            if (method, n) in summary.index:
                s = summary.loc[(method, n)]
                k = int(s["n_seeds"])
                spread = f" ± {s['std']:.1f}" if k > 1 else ""
                cells.append(f"{s['mean']:.1f}{spread} ({k} seed{'s' if k > 1 else ''})")
            else:
                cells.append("–" if method in REPORTED else "not run")
            if (method, n) in paper.index:
                acc, note = paper.loc[(method, n), ["accuracy_pct", "note"]]
                cells.append(f"> {acc:.0f}" if note.startswith("lower bound") else f"{acc:.1f}")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    if data == "paper":
        warn, title = "", "SVHN 0-4 → MNIST 5-9 (accuracy in % on MNIST's test digits 5-9)"
    elif data == "generated":
        warn = ("\n**Data: generated stand-ins, not SVHN/MNIST — the measured numbers only show that the pipeline "
                "runs and are not comparable with the paper's.**\n")
        title = "SVHN 0-4 → MNIST 5-9 on generated stand-ins (accuracy in %)"
    else:
        warn = (f"\n**Data: {data}, not the paper's SVHN → MNIST: the paper's columns are shown for reference "
                "only.**\n")
        title = f"{data} (accuracy in % on the test images of the target classes)"
    return (
        f"# Table 2: {title}\n"
        f"{warn}\n" + "\n".join(lines) + "\n\n"
        "Measured: mean ± sample standard deviation over seeds (each seed draws its own target set and "
        "initial weights). The methods that use the unlabelled MNIST 5-9 training images are quoted from "
        "the paper (not run here), except two-stage SOSELETO, for which the paper gives only 'above 92%' at "
        "n_t = 25.\n"
    )


def write_table2(metrics_jsons: Sequence[str], out_csv: str, out_md: str) -> pd.DataFrame:
    records = read_metrics(metrics_jsons)
    tidy = table2_tidy(records)
    data = data_source(records)
    prov = provenance(records[0]["provenance"]["config"], inputs=list(map(str, metrics_jsons)), data_source=data)
    write_csv(tidy, out_csv, prov=prov)
    md = table2_markdown(tidy, data=data)
    write_markdown(md, out_md, prov=prov)
    log.info("\n%s", md)
    return tidy


# -- Appendix C ----------------------------------------------------------------------------------
def good_percent_by_class(alpha: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Figure 3's numbers: per source class, the count and percentage of instances with ``alpha > threshold``.

    ``alpha`` has columns ``label`` and ``alpha``; returns columns label, n, n_good, percent_good.
    """
    g = alpha.assign(good=alpha.alpha > threshold).groupby("label").good
    return pd.DataFrame({"n": g.size(), "n_good": g.sum().astype(int),
                         "percent_good": 100.0 * g.mean()}).reset_index()


def good_and_bad(alpha: pd.DataFrame, *, label: int, threshold: float, bad_quantile: float, n: int,
                 seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 4: up to ``n`` random "good" (``alpha > threshold``) and "bad" (the lowest
    ``bad_quantile`` by alpha) instances of class ``label``; rows of ``alpha``, sorted by index."""
    cls = alpha[alpha.label == label]
    good = cls[cls.alpha > threshold]
    bad = cls.nsmallest(max(1, int(np.ceil(bad_quantile * len(cls)))), "alpha")
    g = generator(seed)

    def pick(df: pd.DataFrame) -> pd.DataFrame:
        rows = torch.randperm(len(df), generator=g)[:n].sort().values.numpy()
        return df.iloc[rows]

    return pick(good), pick(bad)


def appendix_c_accuracy(records: list[dict]) -> pd.DataFrame:
    """One row per seed: seed, accuracy_pct, paper_accuracy_pct."""
    return pd.DataFrame({"seed": [int(r["seed"]) for r in records],
                         "accuracy_pct": [100.0 * float(r["accuracy"]) for r in records],
                         "paper_accuracy_pct": PAPER_APPENDIX_C}).sort_values("seed", ignore_index=True)


def alpha_separation(alpha: pd.DataFrame, target_classes: Sequence[int], threshold: float) -> dict[str, float]:
    """Does alpha keep the source classes that are also target classes ("shared") and drop the others?

    ``alpha`` has columns ``label`` (original source label) and ``alpha`` (one row per source
    image). Returns the mean alpha and the percentage with ``alpha > threshold`` of the shared and
    of the other images, and ``auroc_shared``: the AUROC of alpha as a score for "shared" (1: every
    shared image above every other, 0.5: alpha does not tell them apart; NaN without both kinds).
    """
    shared = alpha.label.isin(list(target_classes)).to_numpy()
    a = alpha.alpha.to_numpy(dtype=float)

    def part(mask: np.ndarray, fn) -> float:
        return float(fn(a[mask])) if mask.any() else float("nan")

    return {"mean_alpha_shared": part(shared, np.mean), "mean_alpha_other": part(~shared, np.mean),
            "percent_good_shared": part(shared, lambda v: 100.0 * np.mean(v > threshold)),
            "percent_good_other": part(~shared, lambda v: 100.0 * np.mean(v > threshold)),
            "auroc_shared": auroc(shared, a)}


def write_appendix_c(metrics_jsons: Sequence[str], alpha_csvs: Sequence[str], seeds: Sequence[int], data_cfg: Mapping[str, Any],
                     *, threshold: float, bad_quantile: float, grid: int, lowest: int, outputs: Mapping[str, Any]) -> None:
    """``outputs``: ``accuracy`` and ``figure3_data`` (CSV), ``figure3``/``figure4``/``figure5`` (lists of image paths).

    Figure 3 shows the mean over seeds; Figures 4 and 5 show instances of the first seed's run,
    read from the SVHN train split by their index (original 32x32 colour images).
    """
    from soseleto.config import DataConfig
    from soseleto.data.sets import load_labelled
    from soseleto.report import figures as plots

    records = read_metrics(metrics_jsons)
    data = data_source(records)
    prov = provenance(records[0]["provenance"]["config"], inputs=list(map(str, alpha_csvs)), data_source=data, threshold=threshold)
    target = tuple(records[0]["provenance"]["config"]["task"]["target"]["classes"])
    alphas = [pd.read_csv(p) for p in alpha_csvs]
    separation = pd.DataFrame([{"seed": s, **alpha_separation(a, target, threshold)} for a, s in zip(alphas, seeds)])
    acc = appendix_c_accuracy(records).merge(separation, on="seed", how="left")
    write_csv(acc, outputs["accuracy"], prov=prov)
    log.info("Appendix C accuracy (%%): %s (paper %.1f); AUROC of alpha for a shared class: %s",
             acc.accuracy_pct.round(2).tolist(), PAPER_APPENDIX_C, acc.auroc_shared.round(3).tolist())
    per_seed = pd.concat([good_percent_by_class(a, threshold).assign(seed=s) for a, s in zip(alphas, seeds)], ignore_index=True)
    write_csv(per_seed, outputs["figure3_data"], prov=prov)
    title = {"paper": "", "generated": GENERATED}.get(data, f" [{data}]")
    _save(plots.figure3(per_seed, threshold=threshold, title_suffix=title, target_classes=target), outputs["figure3"],
          prov)

    x, _ = load_labelled(records[0]["provenance"]["config"]["task"]["source"]["dataset"], "train", DataConfig(**data_cfg))
    first = alphas[0]
    good, bad = good_and_bad(first, label=0, threshold=threshold, bad_quantile=bad_quantile, n=grid, seed=seeds[0])
    fig4 = plots.figure4(x[torch.tensor(good["index"].to_numpy())], x[torch.tensor(bad["index"].to_numpy())], threshold=threshold,
                         bad_quantile=bad_quantile, title_suffix=title)
    _save(fig4, outputs["figure4"], prov)
    worst = first[first.label == 0].nsmallest(lowest, "alpha")
    _save(plots.figure5(x[torch.tensor(worst["index"].to_numpy())], worst.alpha.to_numpy(), worst["index"].to_numpy(), title_suffix=title),
          outputs["figure5"], prov)


def _save(fig, paths: Sequence[str], prov: dict) -> None:
    import matplotlib.pyplot as plt

    for path in paths:
        save_figure(fig, path, prov=prov)
    plt.close(fig)
