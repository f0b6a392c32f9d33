"""``soseleto fit``: SOSELETO on the user's own source, target and test sets.

Everything is loaded and checked before training starts (see :mod:`soseleto.data.user`), and the
outputs are written atomically at the end, so a failed run leaves no half-written file:

* ``weights.csv`` -- one row per source sample: ``index`` (row in the source set), ``label`` (as
  given there), ``alpha`` (its learned weight) and ``rank`` (1 = lowest alpha = most suspect);
  ImageFolder sources add the image ``path``; with the source's true labels (``--true-labels``)
  also ``true_label`` and ``suspect`` (alpha below ``--flag-threshold``);
* ``model.pt`` -- features, heads, normalisation and the settings (:func:`load_fitted` rebuilds it);
* ``metrics.json`` -- accuracies, alpha statistics and the per-epoch history, with provenance;
  with true labels a ``detection`` block: precision, recall and F1 of flagging the mislabeled
  source samples at the threshold, AUROC and average precision of the ranking by alpha.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soseleto.config import FIT_MODES, SoseletoConfig, to_dict
from soseleto.core.checkpoint import save_checkpoint
from soseleto.core.device import resolve_device
from soseleto.core.loop import Labeled, train
from soseleto.core.models import MODELS, build, build_classifier, build_features, choose_model
from soseleto.core.soseleto import Soseleto
from soseleto.data.images import channel_stats, class_balanced_indices, to_float
from soseleto.data.user import ImageSet, check_labels, harmonise, load_set
from soseleto.io import provenance, write_csv, write_json
from soseleto.metrics import detection_metrics

log = logging.getLogger(__name__)

MODES = FIT_MODES


@dataclass
class Problem:
    """The checked inputs of one fit: sets of one image shape, labels within their classifier."""

    source: ImageSet
    target: ImageSet
    test: ImageSet | None
    n_source_classes: int
    n_target_classes: int


def prepare(source: str, target: str, test: str | None, *, mode: str, data_dir: str | Path = "data",
            download: bool = False, gray: bool = False, size: tuple[int, int] | None = None,
            target_per_class: int | None = None, seed: int = 0) -> Problem:
    """Load and check the three sets. ``noisy``: one classifier, so target and test labels must be
    source classes; ``transfer``: test labels must be target classes. ``target_per_class`` keeps
    that many random target samples of each class (drawn with ``seed``)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid; choose one of {MODES}")
    sets = [load_set(s, data_dir=data_dir, download=download, size=size) for s in (source, target, test) if s]
    harmonise(sets, gray=gray, size=size)
    src, tgt, tst = sets[0], sets[1], sets[2] if test else None
    if target_per_class is not None:
        try:
            keep = class_balanced_indices(tgt.y, target_per_class, seed=seed)
        except ValueError as err:
            raise ValueError(f"--target-per-class {target_per_class}: in the target {target!r}, {err}") from None
        tgt.x, tgt.y, tgt.index, tgt.original_label = tgt.x[keep], tgt.y[keep], tgt.index[keep], tgt.original_label[keep]
        tgt.paths = [tgt.paths[i] for i in keep.tolist()] if tgt.paths else None
    k_s = src.n_classes
    k_t = k_s if mode == "noisy" else tgt.n_classes
    if mode == "noisy":
        check_labels(tgt, k_s, against=f"the source {source!r}")
        if src.class_names and tgt.class_names and src.class_names != tgt.class_names:
            raise ValueError(f"noisy mode needs the same classes: source {src.class_names} vs target {tgt.class_names}")
    if tst is not None:
        check_labels(tst, k_t, against=f"the source {source!r}" if mode == "noisy" else f"the target {target!r}")
    for name, k in (("source", k_s), ("target", k_t)):
        if k < 2:
            raise ValueError(f"the {name} set has {k} class; a classifier needs at least 2")
    return Problem(src, tgt, tst, k_s, k_t)


def run(problem: Problem, outdir: str | Path, *, cfg: SoseletoConfig, model: str = "auto", seed: int = 0,
        device: str = "auto", true_labels: np.ndarray | None = None, flag_threshold: float = 0.1) -> dict:
    """Train SOSELETO on ``problem`` and write ``weights.csv``, ``model.pt``, ``metrics.json`` to ``outdir``.

    ``true_labels`` ``(N_s,)``: the true label of each source sample (see :func:`read_true_labels`);
    when given, alpha is scored as a detector of the mislabeled samples, flagged at
    ``alpha < flag_threshold``.
    """
    mode = "noisy" if cfg.shared_classifier else "transfer"
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    if model != "auto" and model not in MODELS:
        raise ValueError(f"model={model!r} is unknown; choose auto or one of {sorted(MODELS)}")
    model = choose_model(problem.source.shape) if model == "auto" else model
    dev = resolve_device(device)
    trainer, tensors = _trainer(problem, cfg, model=model, seed=seed, device=dev)
    log.info("fit (%s mode) on %s: %d source, %d target samples, images %s, model %s",
             mode, dev, len(tensors["source"]), len(tensors["target"]), problem.source.shape, model)
    monitors = {"target_accuracy": lambda: trainer.accuracy(tensors["target"])}  # on images it trains on
    if "test" in tensors:
        monitors["test_accuracy"] = lambda: trainer.accuracy(tensors["test"])
    history = train(trainer, tensors["source"], tensors["target"], schedule=cfg.schedule, seed=seed, device=dev,
                    monitors=monitors, name="fit")
    alpha = trainer.alpha.cpu()
    metrics = {
        "mode": mode, "model": model, "epochs": cfg.epochs,
        "n_source": len(problem.source), "n_target": len(problem.target), "n_test": len(problem.test) if problem.test else 0,
        "n_source_classes": problem.n_source_classes, "n_target_classes": problem.n_target_classes,
        "target_accuracy": history[-1].values["target_accuracy"],
        "test_accuracy": history[-1].values.get("test_accuracy"),
        "alpha": {"mean": float(alpha.mean()), "min": float(alpha.min()), "max": float(alpha.max()),
                  "fraction_below_0.1": float((alpha < 0.1).float().mean())},
        "history": [h.record() for h in history],
    }
    weights = weights_table(problem.source, alpha)
    if true_labels is not None:
        metrics["detection"] = _detection(weights, problem.source, true_labels, flag_threshold)
    settings = {"mode": mode, "model": model, "seed": seed, "trainer": to_dict(cfg),
                "source": problem.source.spec.text, "target": problem.target.spec.text,
                "test": problem.test.spec.text if problem.test else None}
    _write(out, trainer, problem, weights, metrics, settings, tensors["stats"], device=str(dev))
    return metrics


def _trainer(problem: Problem, cfg: SoseletoConfig, *, model: str, seed: int, device) -> tuple[Soseleto, dict]:
    """The network and SOSELETO state, and the sets as normalised tensors (statistics of source + target)."""
    mean, std = channel_stats(torch.cat([problem.source.x, problem.target.x]))
    tensors: dict = {"stats": (mean, std)}
    for name in ("source", "target", "test"):
        s = getattr(problem, name)
        if s is not None:
            tensors[name] = Labeled(to_float(s.x, mean=mean, std=std), s.y)
    classes = [problem.n_source_classes] + ([] if cfg.shared_classifier else [problem.n_target_classes])
    features, heads = build(model, problem.source.shape, classes, seed=seed)
    trainer = Soseleto(features, heads[0], None if cfg.shared_classifier else heads[1],
                       n_source=len(problem.source), n_target=len(problem.target), cfg=cfg, device=device)
    return trainer, tensors


def _detection(weights: pd.DataFrame, source: ImageSet, true_labels: np.ndarray, threshold: float) -> dict:
    """Score alpha as a detector of the mislabeled source samples; adds true_label and suspect to ``weights``."""
    mislabeled = true_labels != source.original_label.numpy()
    d = detection_metrics(weights["alpha"].to_numpy(), mislabeled, threshold=threshold)
    weights["true_label"], weights["suspect"] = true_labels, weights["alpha"] < threshold
    log.info("mislabeled source samples: %d; alpha < %g flags %d: precision %.3f, recall %.3f; AUROC %.3f",
             d["n_noisy"], threshold, d["n_flagged"], d["precision"], d["recall"], d["auroc"])
    return d


def _write(out: Path, trainer: Soseleto, problem: Problem, weights: pd.DataFrame, metrics: dict, settings: dict,
           stats: tuple, *, device: str) -> None:
    prov = provenance(settings, device=device)
    write_csv(weights, out / "weights.csv", prov=prov)
    save_checkpoint({
        "features": trainer.features.state_dict(), "source_head": trainer.source_head.state_dict(),
        "target_head": None if trainer.shared else trainer.target_head.state_dict(),
        "in_shape": problem.source.shape, "n_source_classes": problem.n_source_classes,
        "n_target_classes": problem.n_target_classes, "mean": stats[0], "std": stats[1], "provenance": prov,
    }, out / "model.pt", config=settings)
    write_json(metrics, out / "metrics.json", prov=prov)
    log.info("test accuracy %s; wrote %s", metrics["test_accuracy"],
             ", ".join(str(out / f) for f in ("weights.csv", "model.pt", "metrics.json")))


def weights_table(source: ImageSet, alpha: torch.Tensor) -> pd.DataFrame:
    """``index, label, alpha, rank`` per source sample (rank 1 = lowest alpha; ties by order)."""
    order = torch.argsort(alpha, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, len(alpha) + 1)
    df = pd.DataFrame({"index": source.index.numpy(), "label": source.original_label.numpy(),
                       "alpha": alpha.numpy(), "rank": rank.numpy()})
    if source.paths:
        df["path"] = source.paths
    return df


def read_true_labels(path: str | os.PathLike, source: ImageSet) -> np.ndarray:
    """The true label ``(N_s,)`` of each sample of ``source`` from ``path``: ``.npy`` (a 1-D
    integer array) or ``.npz`` (its array ``y``), one label per sample of the source as given
    (before ``:CLASSES``), in that set's label numbering. Raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--true-labels {str(path)!r}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        y = loaded["y"] if isinstance(loaded, np.lib.npyio.NpzFile) else loaded
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"--true-labels {str(path)!r}: expected a .npy array or an .npz with an array 'y' ({err})") from None
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"--true-labels {str(path)!r}: expected a 1-D integer array, got {y.dtype} of shape {y.shape}")
    n = source.n_rows if source.n_rows is not None else len(source)
    if len(y) != n:
        raise ValueError(f"--true-labels {str(path)!r} has {len(y)} labels but the source {source.spec.text!r} has "
                         f"{n} samples (one true label per source sample, before :CLASSES)")
    return y[source.index.numpy()]


def load_fitted(path: str | os.PathLike, *, device: str = "cpu") -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Rebuild ``(features, target head, saved state)`` from a ``model.pt``; inputs must be
    normalised with the saved ``mean``/``std`` (:func:`soseleto.data.images.to_float`)."""
    state = torch.load(path, map_location=device, weights_only=False)
    cfg = state["config"]
    features, dim = build_features(cfg["model"], tuple(state["in_shape"]))
    features.load_state_dict(state["features"])
    if state["target_head"] is None:
        head = build_classifier(dim, state["n_source_classes"])
        head.load_state_dict(state["source_head"])
    else:
        head = build_classifier(dim, state["n_target_classes"])
        head.load_state_dict(state["target_head"])
    return features.to(device).eval(), head.to(device).eval(), state


def main(args: argparse.Namespace, cfg: SoseletoConfig) -> int:
    """Entry point of ``soseleto fit`` (its options: :func:`soseleto.cli.fit_arguments`)."""
    problem = prepare(args.source, args.target, args.test, mode=args.mode, data_dir=args.data_dir,
                      download=args.download, gray=args.gray, size=args.size,
                      target_per_class=args.target_per_class, seed=args.seed)
    true_labels = None if args.true_labels is None else read_true_labels(args.true_labels, problem.source)
    metrics = run(problem, args.out, cfg=cfg, model=args.model, seed=args.seed, device=args.device,
                  true_labels=true_labels, flag_threshold=args.flag_threshold)
    print(f"test accuracy: {metrics['test_accuracy']}  target accuracy: {metrics['target_accuracy']:.4f}  "
          f"outputs: {args.out}")
    return 0
