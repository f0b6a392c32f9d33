"""``soseleto fit``: SOSELETO on the user's own source, target and test sets.

Everything is loaded and checked before training starts (see :mod:`soseleto.userdata`), and the
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
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from soseleto.checkpoint import save_checkpoint
from soseleto.config import TrainerConfig, to_dict
from soseleto.data import channel_stats, class_balanced_indices, to_float
from soseleto.detection import detection_metrics
from soseleto.devices import resolve_device
from soseleto.io import provenance, write_csv, write_json
from soseleto.models import MODELS, build_classifier, build_features
from soseleto.rng import seeded
from soseleto.trainer import Labeled, Soseleto
from soseleto.userdata import ImageSet, check_labels, harmonise, load_set

log = logging.getLogger(__name__)

MODES = ("noisy", "transfer")
DESCRIPTION = """\
Learn one weight alpha per source sample so that training on the weighted source helps the small,
clean target set; low alpha = a source sample that is likely mislabeled (noisy mode) or unhelpful
for the target task (transfer mode).

Each set is one of
  NAME:SPLIT[:CLASSES]   torchvision set: cifar10, svhn or mnist; split train or test
  FILE.npz[:CLASSES]     arrays x (N, H, W) or (N, H, W, C) uint8 and y (N,) integer labels
  FOLDER[:CLASSES]       ImageFolder layout FOLDER/<class>/<image>, classes in sorted order
CLASSES keeps only those labels (e.g. 5,6,7,8,9 or 5-9) and numbers them 0, 1, ... in that order.

Writes OUT/weights.csv (index, label, alpha, rank; rank 1 = lowest alpha = most suspect),
OUT/model.pt and OUT/metrics.json. With --true-labels FILE (the source's true labels: FILE.npy,
a 1-D integer array, or FILE.npz with an array y; one label per source sample as given, before
:CLASSES, in its numbering) metrics.json also scores alpha as a detector of the mislabeled
samples, and weights.csv gets true_label and suspect (alpha < --flag-threshold).

example:
  soseleto fit --mode noisy --source noisy.npz --target clean.npz --test test.npz --out fit/
  soseleto fit --mode transfer --source svhn:train --target mnist:train:5-9 \\
      --target-per-class 10 --test mnist:test:5-9 --gray --size 28 --out svhn2mnist/
  soseleto fit --mode noisy --source noisy.npz --target clean.npz --true-labels true.npz --out fit/
"""


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


def choose_model(shape: tuple[int, int, int]) -> str:
    """LeNet for gray images of at least 16 px, CIFAR-10 Quick for other images of at least 8 px,
    otherwise an MLP; ``--model`` overrides."""
    c, h, w = shape
    if min(h, w) < 8:
        return "mlp"
    return "lenet" if c == 1 and min(h, w) >= 16 else "cifar_quick"


def run(problem: Problem, outdir: str | Path, *, cfg: TrainerConfig, model: str | None = None,
        seed: int = 0, device: str = "auto", true_labels: np.ndarray | None = None,
        flag_threshold: float = 0.1) -> dict:
    """Train SOSELETO on ``problem`` and write ``weights.csv``, ``model.pt``, ``metrics.json`` to ``outdir``.

    ``true_labels`` ``(N_s,)``: the true label of each source sample (see :func:`read_true_labels`);
    when given, alpha is scored as a detector of the mislabeled samples, flagged at
    ``alpha < flag_threshold``.
    """
    mode = "noisy" if cfg.shared_classifier else "transfer"
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    model = model or choose_model(problem.source.shape)
    if model not in MODELS:
        raise ValueError(f"model={model!r} is unknown; choose one of {sorted(MODELS)}")
    dev = resolve_device(device)
    mean, std = channel_stats(torch.cat([problem.source.x, problem.target.x]))
    source = Labeled(to_float(problem.source.x, mean=mean, std=std), problem.source.y)
    target = Labeled(to_float(problem.target.x, mean=mean, std=std), problem.target.y)
    with seeded(seed):
        features, dim = build_features(model, problem.source.shape)
        head_s = build_classifier(dim, problem.n_source_classes)
        head_t = None if cfg.shared_classifier else build_classifier(dim, problem.n_target_classes)
    trainer = Soseleto(features, head_s, head_t, n_source=len(source), n_target=len(target), cfg=cfg, device=dev)
    log.info("fit (%s mode) on %s: %d source, %d target samples, images %s, model %s",
             mode, dev, len(source), len(target), problem.source.shape, model)

    history = []

    def on_epoch(t: Soseleto, stats) -> None:
        acc = t.accuracy(target)
        history.append({**stats.record(), "target_accuracy": acc})
        log.info("epoch %d/%d  loss_source %.4f  loss_target %.4f  target accuracy %.3f  mean alpha %.3f",
                 stats.epoch, cfg.epochs, stats.loss_source, stats.loss_target, acc, stats.alpha_mean)

    with _quiet("soseleto.trainer"):  # on_epoch logs a fuller line for every epoch
        trainer.fit(source, target, seed=seed, on_epoch=on_epoch)

    alpha = trainer.alpha.cpu()
    metrics = {
        "mode": mode, "model": model, "epochs": cfg.epochs,
        "n_source": len(source), "n_target": len(target), "n_test": len(problem.test) if problem.test else 0,
        "n_source_classes": problem.n_source_classes, "n_target_classes": problem.n_target_classes,
        "target_accuracy": history[-1]["target_accuracy"],
        "test_accuracy": _test_accuracy(trainer, problem.test, mean, std),
        "alpha": {"mean": float(alpha.mean()), "min": float(alpha.min()), "max": float(alpha.max()),
                  "fraction_below_0.1": float((alpha < 0.1).float().mean())},
        "history": history,
    }
    weights = weights_table(problem.source, alpha)
    if true_labels is not None:
        mislabeled = true_labels != problem.source.original_label.numpy()
        metrics["detection"] = detection_metrics(alpha.numpy(), mislabeled, threshold=flag_threshold)
        weights["true_label"], weights["suspect"] = true_labels, weights["alpha"] < flag_threshold
        d = metrics["detection"]
        log.info("mislabeled source samples: %d; alpha < %g flags %d: precision %.3f, recall %.3f; AUROC %.3f",
                 d["n_noisy"], flag_threshold, d["n_flagged"], d["precision"], d["recall"], d["auroc"])
    settings = {"mode": mode, "model": model, "seed": seed, "trainer": to_dict(cfg),
                "source": problem.source.spec.text, "target": problem.target.spec.text,
                "test": problem.test.spec.text if problem.test else None}
    prov = provenance(settings, device=str(dev))
    write_csv(weights, out / "weights.csv", prov=prov)
    save_checkpoint({
        "features": trainer.features.state_dict(), "source_head": trainer.source_head.state_dict(),
        "target_head": None if trainer.shared else trainer.target_head.state_dict(),
        "in_shape": problem.source.shape, "n_source_classes": problem.n_source_classes,
        "n_target_classes": problem.n_target_classes, "mean": mean, "std": std, "provenance": prov,
    }, out / "model.pt", config=settings)
    write_json(metrics, out / "metrics.json", prov=prov)
    log.info("test accuracy %s; wrote %s", metrics["test_accuracy"], ", ".join(str(out / f) for f in
             ("weights.csv", "model.pt", "metrics.json")))
    return metrics


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
    normalised with the saved ``mean``/``std`` (:func:`soseleto.data.to_float`)."""
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``soseleto fit`` options (defaults: TrainerConfig's meaning, values for small images)."""
    p.add_argument("--source", required=True, help="source set: NAME:SPLIT[:CLASSES], FILE.npz[:CLASSES] or FOLDER[:CLASSES]")
    p.add_argument("--target", required=True, help="small clean target set, same forms")
    p.add_argument("--test", help="held-out test set with the target's labels (optional)")
    p.add_argument("--target-per-class", type=int, metavar="N", help="keep N random target samples per class")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="noisy: one classifier, same labels (noisy source); transfer: separate heads")
    p.add_argument("--out", required=True, help="output directory for weights.csv, model.pt, metrics.json")
    p.add_argument("--model", choices=sorted(MODELS), help="feature network (default: by image shape)")
    p.add_argument("--epochs", type=int, default=20, help="passes over the source set")
    p.add_argument("--lr", type=float, default=0.01, help="lambda_p, SGD step of the networks")
    p.add_argument("--lr-alpha", type=float, default=100.0, help="lambda_alpha (alpha moves by lr_alpha*lr*q.g)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--alpha-init", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=128, help="source batch (samples)")
    p.add_argument("--target-batch-size", type=int, default=32, help="target batch (samples)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--data-dir", default="data", help="where torchvision sets live")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=False,
                   help="download missing torchvision sets into --data-dir (needs internet)")
    p.add_argument("--gray", action="store_true", help="convert RGB images to gray (e.g. SVHN -> MNIST)")
    p.add_argument("--size", type=_size, help="resize every image to HxW (or N for NxN)")
    p.add_argument("--true-labels", metavar="FILE",
                   help="the source's true labels (.npy 1-D integer array, or .npz with array y; one per source "
                        "sample, before :CLASSES): score alpha as a detector of the mislabeled samples")
    p.add_argument("--flag-threshold", type=float, default=0.1,
                   help="with --true-labels: flag (suspect) source samples with alpha below this")


def main(args: argparse.Namespace) -> int:
    """Entry point of ``soseleto fit`` (see :func:`add_arguments`)."""
    cfg = TrainerConfig(
        lr_p=args.lr, lr_alpha=args.lr_alpha, momentum=args.momentum, weight_decay=args.weight_decay,
        alpha_init=args.alpha_init, source_batch=args.batch_size, target_batch=args.target_batch_size,
        epochs=args.epochs, shared_classifier=args.mode == "noisy",
    )
    problem = prepare(args.source, args.target, args.test, mode=args.mode, data_dir=args.data_dir,
                      download=args.download, gray=args.gray, size=args.size,
                      target_per_class=args.target_per_class, seed=args.seed)
    true_labels = None if args.true_labels is None else read_true_labels(args.true_labels, problem.source)
    metrics = run(problem, args.out, cfg=cfg, model=args.model, seed=args.seed, device=args.device,
                  true_labels=true_labels, flag_threshold=args.flag_threshold)
    print(f"test accuracy: {metrics['test_accuracy']}  target accuracy: {metrics['target_accuracy']:.4f}  "
          f"outputs: {args.out}")
    return 0


def _test_accuracy(trainer: Soseleto, test: ImageSet | None, mean: torch.Tensor, std: torch.Tensor) -> float | None:
    if test is None:
        return None
    return trainer.accuracy(Labeled(to_float(test.x, mean=mean, std=std), test.y))


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected HxW or N, e.g. 28x28") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"--size {text!r}: sides must be positive")
    return size


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
