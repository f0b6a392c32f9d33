"""The Table 1 protocol (section 4.2): learning with noisy labels on any labelled image set.

Per noise level: a confusion matrix (diagonal ``1 - noise``, random row-stochastic off-diagonals)
and a split of the set into a test part (the set's own test split, or ``test_per_class`` images per
class held out), a clean class-balanced target (of which ``validation_per_class`` images per class
are held out of training to choose an epoch) and a noisy source whose labels are resampled from the
matrix. Per (noise level, method, seed): one training run of a method of the registry
(:mod:`soseleto.config.methods`), e.g.

* ``noisy_baseline``: the network trained on the noisy source as if it were clean;
* ``soseleto``: Algorithm 1 with the noisy source and the clean target (shared classifier);
* ``soseleto_frozen``: the same with ``lr_alpha = 0`` (alpha stays at its initial value), which
  shows what the reweighting itself adds;
* ``finetune``: the noisy baseline's network, trained further on the clean target;
* beyond the paper, the peer methods (:mod:`soseleto.methods`) on the same split, seeds and network.

Every run records the test (and validation) accuracy after every epoch, its final test accuracy
and the test accuracy at the epoch of best validation accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from soseleto.config import INPUT_SCALES, DataConfig, NoisySplitConfig, PairedConfig, PlainConfig, SoseletoConfig
from soseleto.config import methods as registry
from soseleto.core.checkpoint import identity, load_checkpoint, publish, resume_path
from soseleto.core.device import resolve_device
from soseleto.core.evaluate import accuracy
from soseleto.core.loop import EpochStats, Labeled
from soseleto.core.models import build
from soseleto.data import images, sets
from soseleto.data.noise import confusion_matrix, corrupt_labels
from soseleto.io import provenance, write_csv, write_json

log = logging.getLogger(__name__)

ROLES = ("source", "target", "validation", "test")


# -- the data split ---------------------------------------------------------------------------------
def make_split(y: torch.Tensor, matrix: np.ndarray, *, n_target: int, seed: int, validation_per_class: int = 0,
               test_per_class: int | None = None) -> pd.DataFrame:
    """Split the labels ``y`` ``(N,)`` of a set into test, clean target, validation and noisy source.

    With ``test_per_class``, that many images per class become the ``test`` role (drawn with
    ``seed + 2``). Of the rest, ``n_target`` (``n_target / K`` per class, drawn with ``seed``) are
    the clean target, ``validation_per_class`` per class of which (drawn with ``seed + 3``) are
    ``validation``; every other image is ``source``, its label resampled from ``matrix[true
    label]`` (draws from ``seed + 1``). Returns one row per image: ``index``, ``role``,
    ``true_label``, ``label`` (what training sees), ``noisy``.
    """
    k = len(matrix)
    if n_target % k:
        raise ValueError(f"n_target={n_target} is not a multiple of the {k} classes")
    role = np.full(len(y), "source", dtype=object)
    pool = torch.arange(len(y))
    if test_per_class:
        role[images.class_balanced_indices(y, test_per_class, seed=seed + 2, classes=list(range(k))).numpy()] = "test"
        pool = torch.from_numpy(np.flatnonzero(role == "source"))
    target = pool[images.class_balanced_indices(y[pool], n_target // k, seed=seed, classes=list(range(k)))]
    role[target.numpy()] = "target"
    if validation_per_class:
        if validation_per_class >= n_target // k:
            raise ValueError(f"validation_per_class={validation_per_class} leaves no clean target image of a class "
                             f"(n_target={n_target} is {n_target // k} per class)")
        val = target[images.class_balanced_indices(y[target], validation_per_class, seed=seed + 3)]
        role[val.numpy()] = "validation"
    source = torch.from_numpy(np.flatnonzero(role == "source"))
    label = y.clone()
    label[source] = corrupt_labels(y[source], matrix, seed=seed + 1)
    return pd.DataFrame({"index": np.arange(len(y)), "role": role.astype(str), "true_label": y.numpy(),
                         "label": label.numpy(), "noisy": (label != y).numpy()})


def write_split(split_cfg: NoisySplitConfig, data: DataConfig, *, noise: float, outputs: dict[str, str]) -> dict:
    """Draw the confusion matrix for ``noise`` and the split; write ``outputs['split']`` (CSV),
    ``outputs['confusion']`` (CSV) and ``outputs['info']`` (JSON summary)."""
    _, y = sets.load_labelled(split_cfg.dataset, "train", data)
    k = sets.n_classes(split_cfg.dataset, y)
    matrix = confusion_matrix(k, noise, seed=split_cfg.matrix_seed)
    split = make_split(y, matrix, n_target=split_cfg.n_target, seed=split_cfg.split_seed,
                       validation_per_class=split_cfg.validation_per_class, test_per_class=split_cfg.test_per_class)
    src = split[split.role == "source"]
    info = {"noise": noise, "realised_noise": float(src.noisy.mean()), "n_classes": k,
            **{f"n_{r}": int((split.role == r).sum()) for r in ROLES},
            "target_per_class": split[split.role == "target"].true_label.value_counts().sort_index().tolist()}
    prov = provenance({"split": split_cfg, "data": data}, noise=noise)
    frame = pd.DataFrame(matrix, columns=[str(j) for j in range(k)])
    frame.insert(0, "true_label", np.arange(k))
    write_csv(frame, outputs["confusion"], prov=prov)
    write_csv(split, outputs["split"], prov=prov)
    write_json(info, outputs["info"], prov=prov)
    log.info("noise %g: %d source (realised noise %.4f), %d target, %d validation, %d test", noise,
             info["n_source"], info["realised_noise"], info["n_target"], info["n_validation"], info["n_test"])
    return info


# -- one training run -------------------------------------------------------------------------------
@dataclass
class NoisySets:
    """The sets of one split as normalised float tensors (``validation`` is ``None`` without one)."""

    source: Labeled  # noisy labels
    target: Labeled  # clean
    validation: Labeled | None
    test: Labeled
    n_classes: int
    shape: tuple[int, ...]


def load_sets(split_cfg: NoisySplitConfig, data: DataConfig, split: pd.DataFrame,
              input_scale: str = "standard") -> NoisySets:
    """The split's sets, centred per channel with the mean of every image that is not test, and
    divided by its std (``input_scale="standard"``) or left on the 0-255 pixel scale (``"caffe"``:
    what Caffe's CIFAR-10 example feeds CIFAR-10 Quick, whose prototxt fillers are sized for it)."""
    if input_scale not in INPUT_SCALES:
        raise ValueError(f"input_scale={input_scale!r} is unknown; choose one of {list(INPUT_SCALES)}")
    x, y = sets.load_labelled(split_cfg.dataset, "train", data)
    if len(split) != len(y) or not np.array_equal(split.true_label.to_numpy(), y.numpy()):
        what = (f"{len(split)} rows for {len(y)} samples" if len(split) != len(y) else
                f"row {int(np.flatnonzero(split.true_label.to_numpy() != y.numpy())[0])} has another label")
        raise ValueError(f"the split does not match the data set {split_cfg.dataset!r} ({what}: written for "
                         "different data?); delete the split file to rebuild it")
    test_rows = split.role.to_numpy() == "test"
    mean, std = images.channel_stats(x[torch.from_numpy(~test_rows)] if test_rows.any() else x)
    if input_scale == "caffe":  # (x / 255 - mean) * 255: pixels minus the mean, not divided by the std
        std = torch.full_like(std, 1 / 255)

    def subset(role: str) -> Labeled | None:
        frame = split[split.role == role]
        if frame.empty:
            return None
        idx = torch.tensor(frame["index"].to_numpy())
        return Labeled(images.to_float(x[idx], mean=mean, std=std), torch.tensor(frame.label.to_numpy()))

    if test_rows.any():
        test = subset("test")
    else:
        xt, yt = sets.load_labelled(split_cfg.dataset, "test", data)
        test = Labeled(images.to_float(xt, mean=mean, std=std), yt)
    return NoisySets(subset("source"), subset("target"), subset("validation"), test,
                     sets.n_classes(split_cfg.dataset, y), tuple(x.shape[1:]))


Settings = SoseletoConfig | PlainConfig | PairedConfig


def _start(entry: registry.Method, init: tuple[str, Settings] | None, features: nn.Module, head: nn.Module,
           data_sets: NoisySets, *, seed: int, options: Any, context: dict) -> tuple[dict, dict]:
    """For a method that starts from another run: load that run's checkpoint (checking it is the
    run of these settings) and take what the method inherits. Returns (metrics to add, keyword
    arguments of the runner): the weights go into ``features`` and ``head`` (``init_accuracy``: the
    test accuracy it starts from), alpha becomes the runner's ``alpha``."""
    if not entry.starts_from:
        return {}, {}
    if init is None:
        raise ValueError(f"{entry.name} needs init: the {entry.starts_from} checkpoint and settings")
    first = registry.get("noisy", entry.starts_from)
    state = load_checkpoint(init[0], map_location="cpu", config=identity(
        first.name, init[1], seed=seed, options=None if first.options is None else options, **context))
    if entry.inherits == "alpha":
        return {}, {"alpha": state["alpha"]}
    features.load_state_dict(state["features"]), head.load_state_dict(state["head"])
    return {"init_accuracy": accuracy(features, head, data_sets.test.x, data_sets.test.y)}, {}


def run_method(method: str, settings: Settings, *, split_cfg: NoisySplitConfig, model: str, data: DataConfig,
               noise: float, seed: int, device: str, split_csv: str, outputs: dict[str, str], options: Any = None,
               init: tuple[str, Settings] | None = None, weight_init: str = "pytorch",
               input_scale: str = "standard") -> dict:
    """Train ``method`` (an entry of :mod:`soseleto.config.methods`) with ``settings`` and its
    ``options`` for one (noise level, seed); write ``outputs['metrics']`` (JSON),
    ``outputs['checkpoint']`` and, for a method with per-sample scores, ``outputs['alpha']`` or
    ``outputs['scores']`` (the per-source-sample table, see :func:`source_alpha_table`).

    The resumable state lives in ``<checkpoint>.resume`` while training, so a killed job resumes;
    it is published as the checkpoint once everything else is written. A method that starts from
    another run (``finetune``) gets ``init`` = (that run's checkpoint, its settings); every other
    method starts from the initial weights ``weight_init`` (:func:`soseleto.core.models.build`).
    ``input_scale``: the pixel scale of every set (:func:`load_sets`).
    """
    entry = registry.get("noisy", method)
    extra_outputs = sorted(set(outputs) - {"metrics", "checkpoint"})
    if extra_outputs != ([entry.scores] if entry.scores else []):
        raise ValueError(f"{method} writes metrics, checkpoint{', ' + entry.scores if entry.scores else ''}; "
                         f"got outputs {sorted(outputs)}")
    dev = resolve_device(device)
    split = pd.read_csv(split_csv)
    data_sets = load_sets(split_cfg, data, split, input_scale)
    features, (head,) = build(model, data_sets.shape, [data_sets.n_classes], seed=seed, weight_init=weight_init)
    context = {"noise": noise, "split": split_cfg, "model": model, "weight_init": weight_init,
               "input_scale": input_scale, "data": data}
    ident = identity(method, settings, seed=seed, options=options, **context)
    log.info("%s, noise %g, seed %d on %s: %d source, %d target, %d test", method, noise, seed, dev,
             len(data_sets.source), len(data_sets.target), len(data_sets.test))
    extra, start = _start(entry, init, features, head, data_sets, seed=seed, options=options, context=context)
    resume = resume_path(outputs["checkpoint"])
    run = entry.runner()(features, head, data_sets.source, data_sets.target, settings, options, seed=seed, device=dev,
                         checkpoint=resume, identity=ident, monitors=monitors(features, head, data_sets), name=method,
                         **start)
    metrics = {"method": method, "noise": noise, "seed": seed, "realised_noise": float(split[split.role == "source"].noisy.mean()),
               **{f"n_{r}": len(getattr(data_sets, r)) if getattr(data_sets, r) is not None else 0 for r in ROLES},
               **run_summary(run.history, settings.epochs), **extra}
    if entry.scores:
        column = "alpha" if entry.scores == "alpha" else "score"
        table = source_alpha_table(split, run.scores, column=column)
        if "draws" in run.extra:
            table["draws"] = run.extra["draws"].astype(int)
        metrics.update(_mean_by_truth(table, column))
    metrics.update({k: np.asarray(v).tolist() for k, v in run.extra.items() if k != "draws"})
    prov = provenance({"settings": settings, "options": options, **context}, method=method, noise=noise, seed=seed,
                      device=str(dev))
    if entry.scores:
        write_csv(table, outputs[entry.scores], prov=prov)
    write_json(metrics, outputs["metrics"], prov=prov)
    publish(resume, outputs["checkpoint"])
    log.info("%s, noise %g, seed %d: test accuracy %.4f", method, noise, seed, metrics["accuracy"])
    return metrics


def monitors(features, head, data: NoisySets) -> dict[str, Callable[[], float]]:
    """Per-epoch test accuracy, and validation accuracy when the split has a validation part."""
    out = {"test_accuracy": lambda: accuracy(features, head, data.test.x, data.test.y)}
    if data.validation is not None:
        out["validation_accuracy"] = lambda: accuracy(features, head, data.validation.x, data.validation.y)
    return out


def run_summary(history: list[EpochStats], epochs: int) -> dict[str, Any]:
    """Final test accuracy, the test accuracy at the epoch of best validation accuracy among the
    evaluated epochs (the first such epoch; absent without validation), time per epoch and the
    history."""
    out: dict[str, Any] = {"accuracy": history[-1].values["test_accuracy"], "epochs": epochs,
                           "seconds_per_epoch": float(np.mean([h.seconds for h in history]))}
    if "validation_accuracy" in history[-1].values:
        evaluated = [h for h in history if "validation_accuracy" in h.values]
        best = max(evaluated, key=lambda h: (h.values["validation_accuracy"], -h.epoch))
        out.update({"best_epoch": best.epoch, "accuracy_at_best_validation": best.values["test_accuracy"],
                    "best_validation_accuracy": best.values["validation_accuracy"]})
    out["history"] = [h.record() for h in history]
    return out


def source_alpha_table(split: pd.DataFrame, alpha: np.ndarray, *, column: str = "alpha") -> pd.DataFrame:
    """One row per source sample, in source order: index, label (noisy), true_label, noisy, and
    the per-sample ``alpha`` ``(N_s,)`` (or other score) under ``column``."""
    src = split[split.role == "source"]
    if len(src) != len(alpha):
        raise ValueError(f"{len(alpha)} values of {column!r} for {len(src)} source samples")
    return pd.DataFrame({"index": src["index"].to_numpy(), "label": src.label.to_numpy(),
                         "true_label": src.true_label.to_numpy(), "noisy": src.noisy.to_numpy(dtype=bool),
                         column: np.asarray(alpha, dtype=float)})


def _mean_by_truth(table: pd.DataFrame, column: str) -> dict[str, float]:
    """Mean of ``column`` over the clean and over the corrupted source samples."""
    noisy = table.noisy.to_numpy(dtype=bool)
    return {f"{column}_mean_clean": float(table[column][~noisy].mean()),
            f"{column}_mean_noisy": float(table[column][noisy].mean()) if noisy.any() else float("nan")}
