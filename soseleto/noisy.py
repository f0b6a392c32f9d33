"""Section 4.2 / Table 1 / Figure 2: learning with noisy labels on CIFAR-10.

Per noise level: a confusion matrix (diagonal ``1 - noise``, random row-stochastic off-diagonals),
a split of the train set into a clean class-balanced target and a noisy source whose labels are
resampled from the matrix. Per (noise level, method, seed): one training run of

* ``noisy_baseline``: CIFAR-10 Quick trained on the noisy source as if it were clean;
* ``soseleto``: Algorithm 1 with the noisy source and the clean target (shared classifier);
* ``finetune``: the noisy baseline's network, trained further on the clean target;
* beyond the paper, the peer methods of :mod:`soseleto.peers` (``joint``, ``l2rw``, ``glc``,
  ``noise_layer``) on the same split, seeds and network.

Every run reports its accuracy on the test set. Aggregation (:mod:`soseleto.table1`) builds the
tables and Figure 2; :mod:`soseleto.label_errors` scores the detection of the corrupted labels.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from soseleto import data
from soseleto.baselines import train_plain
from soseleto.checkpoint import load_checkpoint, publish, resume_path
from soseleto.config import NOISY_METHODS, PEER_METHODS, NoisyConfig, TrainerConfig, from_dict, to_dict
from soseleto.devices import resolve_device
from soseleto.evaluate import accuracy
from soseleto.io import provenance, save_figure, write_csv, write_json
from soseleto.models import build_classifier, build_features
from soseleto.noise import confusion_matrix, corrupt_labels
from soseleto.peers import train_peer
from soseleto.rng import seeded
from soseleto.trainer import Labeled, Soseleto

log = logging.getLogger(__name__)

DATASET, MODEL = "cifar10", "cifar_quick"


def config_from_mapping(mapping: Mapping[str, Any]) -> NoisyConfig:
    """The ``noisy:`` section of the workflow config (``seeds`` is the workflow's business)."""
    return from_dict(NoisyConfig, {k: v for k, v in mapping.items() if k != "seeds"}, where="noisy.")


# the sections of ``noisy:`` each job reads (the rest of it must not rerun the job when edited)
_SECTIONS = {"noisy_baseline": ("baseline",), "soseleto": ("trainer",), "finetune": ("finetune", "baseline"),
             "cleanlab": ("baseline", "cleanlab_folds"), "split": ("matrix_seed", "split_seed", "n_target")}


def rule_params(mapping: Mapping[str, Any], method: str) -> dict:
    """The part of the ``noisy:`` section a job of ``method`` reads (its Snakemake ``params``), so
    that editing one method's settings (or the list of methods) reruns only the jobs that use them.

    The peers read ``peer_trainer`` and ``peers`` (and ``baseline``/``trainer`` while
    ``peer_trainer`` is unset, see :attr:`NoisyConfig.peer_settings`); ``cleanlab`` reads
    ``baseline`` and ``cleanlab_folds``; ``split`` (the data split of a noise level) the seeds and
    ``n_target``.
    """
    if method in PEER_METHODS:
        own = ("peer_trainer", "peers") if mapping.get("peer_trainer") is not None else ("baseline", "trainer", "peers")
    elif method in _SECTIONS:
        own = _SECTIONS[method]
    else:
        raise ValueError(f"method={method!r} is invalid; choose one of {(*NOISY_METHODS, *_SECTIONS)}")
    return {k: mapping[k] for k in ("n_classes", *own) if k in mapping}


def noise_tag(noise: float) -> str:
    """How a noise level appears in paths and wildcards: ``0.3`` -> ``'0.3'``."""
    return f"{float(noise):g}"


# -- the data split ---------------------------------------------------------------------------------
def make_split(y: torch.Tensor, matrix: np.ndarray, *, n_target: int, seed: int) -> pd.DataFrame:
    """Split the train labels ``y`` ``(N,)`` into a clean target and a noisy source.

    The target is ``n_target`` samples, ``n_target / K`` of each class, drawn with ``seed``; every
    other sample is source, with its label resampled from ``matrix[true_label]`` (draws from
    ``seed + 1``). Returns one row per train sample: ``index`` (into the train set), ``role``
    (``target`` | ``source``), ``true_label``, ``label`` (the label training sees), ``noisy``.
    """
    k = len(matrix)
    if n_target % k:
        raise ValueError(f"n_target={n_target} is not a multiple of the {k} classes")
    target = data.class_balanced_indices(y, n_target // k, seed=seed, classes=list(range(k)))
    is_target = torch.zeros(len(y), dtype=torch.bool)
    is_target[target] = True
    source = torch.nonzero(~is_target).flatten()
    label = y.clone()
    label[source] = corrupt_labels(y[source], matrix, seed=seed + 1)
    return pd.DataFrame({
        "index": np.arange(len(y)),
        "role": np.where(is_target.numpy(), "target", "source"),
        "true_label": y.numpy(),
        "label": label.numpy(),
        "noisy": (label != y).numpy(),
    })


def write_split(mapping: Mapping[str, Any], data_cfg: Mapping[str, Any], *, noise: float,
                split_csv: str, confusion_csv: str, info_json: str) -> dict:
    """Draw the confusion matrix for ``noise`` and the split; write both plus a summary JSON.

    This is the one job that may download CIFAR-10 (train and test) into ``data.dir``.
    """
    cfg = config_from_mapping(mapping)
    _, y = data.load_configured(DATASET, "train", data_cfg)
    matrix = confusion_matrix(cfg.n_classes, noise, seed=cfg.matrix_seed)
    split = make_split(y, matrix, n_target=cfg.n_target, seed=cfg.split_seed)
    src = split[split.role == "source"]
    info = {
        "noise": noise,
        "realised_noise": float(src.noisy.mean()),
        "n_source": len(src),
        "n_target": int((split.role == "target").sum()),
        "target_per_class": split[split.role == "target"].true_label.value_counts().sort_index().tolist(),
        "matrix_seed": cfg.matrix_seed,
        "split_seed": cfg.split_seed,
    }
    prov = provenance({"noisy": dict(mapping), "data": dict(data_cfg)}, noise=noise)
    frame = pd.DataFrame(matrix, columns=[str(j) for j in range(cfg.n_classes)])
    frame.insert(0, "true_label", np.arange(cfg.n_classes))
    write_csv(frame, confusion_csv, prov=prov)
    write_csv(split, split_csv, prov=prov)
    write_json(info, info_json, prov=prov)
    log.info("noise %g: %d source (realised noise %.4f), %d target", noise, info["n_source"],
             info["realised_noise"], info["n_target"])
    return info


def read_confusion(path: str | os.PathLike) -> np.ndarray:
    """The ``(K, K)`` matrix of a ``confusion.csv`` written by :func:`write_split`."""
    return pd.read_csv(path, index_col="true_label").to_numpy()


# -- one training run -------------------------------------------------------------------------------
def load_sets(data_cfg: Mapping[str, Any], split: pd.DataFrame) -> tuple[Labeled, Labeled, Labeled]:
    """Source (noisy labels), target (clean) and test sets as normalised float tensors.

    Inputs are standardised per channel with the statistics of all train images.
    """
    x, y = data.load_configured(DATASET, "train", data_cfg)
    if len(split) != len(y) or not np.array_equal(split.true_label.to_numpy(), y.numpy()):
        raise ValueError("the split does not match the train set in data.dir (different data?); rebuild the split")
    mean, std = data.channel_stats(x)
    src, tgt = split[split.role == "source"], split[split.role == "target"]

    def subset(frame: pd.DataFrame) -> Labeled:
        idx = torch.tensor(frame["index"].to_numpy())
        return Labeled(data.to_float(x[idx], mean=mean, std=std), torch.tensor(frame.label.to_numpy()))

    xt, yt = data.load_configured(DATASET, "test", data_cfg)
    return subset(src), subset(tgt), Labeled(data.to_float(xt, mean=mean, std=std), yt)


def build_network(seed: int, n_classes: int = 10) -> tuple[torch.nn.Module, torch.nn.Module]:
    """CIFAR-10 Quick as (features, classifier), initialised from ``seed``."""
    with seeded(seed):
        features, dim = build_features(MODEL, data.DATASETS[DATASET].shape)
        return features, build_classifier(dim, n_classes)


def checkpoint_config(method: str, cfg: TrainerConfig, *, noise: float, seed: int,
                      data_cfg: Mapping[str, Any] | None = None) -> dict:
    """What a run's checkpoint must have been written for to be resumed (or fine-tuned from)."""
    return {"method": method, "trainer": to_dict(cfg), "noise": noise, "seed": seed, "data": dict(data_cfg or {})}


def run_method(
    mapping: Mapping[str, Any], data_cfg: Mapping[str, Any], *, method: str, noise: float, seed: int, device: str,
    split_csv: str, metrics_json: str, checkpoint: str, alpha_csv: str | None = None,
    scores_csv: str | None = None, init_checkpoint: str | None = None,
) -> dict:
    """Train ``method`` for one (noise level, seed); write metrics JSON, checkpoint, and the
    per-sample table of the source (``alpha_csv`` for ``soseleto``, ``scores_csv`` for ``l2rw``:
    index, label, true_label, noisy, alpha or score).

    The resumable state lives in ``<checkpoint>.resume`` while training
    (:func:`soseleto.checkpoint.resume_path`), so a killed job resumes from there; it is published
    as ``checkpoint`` once everything else is written. ``finetune`` starts from
    ``init_checkpoint``, the noisy baseline's checkpoint for the same noise level and seed.
    """
    cfg = config_from_mapping(mapping)
    tables = [(p, name, writer) for p, name, writer in ((alpha_csv, "alpha_csv", "soseleto"), (scores_csv, "scores_csv", "l2rw"))
              if p is not None]
    for _, name, writer in tables:
        if method != writer:
            raise ValueError(f"{name} is only written by {writer}, not {method!r}")
    dev = resolve_device(device)
    split = pd.read_csv(split_csv)
    source, target, test = load_sets(data_cfg, split)
    features, head = build_network(seed, cfg.n_classes)
    partial = resume_path(checkpoint)
    ck = lambda m, c: checkpoint_config(m, c, noise=noise, seed=seed, data_cfg=data_cfg)  # noqa: E731
    times: list[float] = [time.perf_counter()]
    tick = lambda *_: times.append(time.perf_counter())  # noqa: E731  one timestamp per epoch
    extra: dict[str, Any] = {}
    log.info("%s, noise %g, seed %d on %s: %d source, %d target, %d test", method, noise, seed, dev,
             len(source), len(target), len(test))

    if method == "soseleto":
        tcfg = cfg.trainer
        trainer = Soseleto(features, head, None, n_source=len(source), n_target=len(target), cfg=tcfg, device=dev)
        history = trainer.fit(source, target, seed=seed, on_epoch=tick, checkpoint=partial,
                              checkpoint_config=ck(method, tcfg))
        table = source_alpha_table(split, trainer.alpha.cpu().numpy())
        extra = _mean_by_truth(table, "alpha")
    elif method in ("noisy_baseline", "finetune"):
        tcfg = cfg.baseline if method == "noisy_baseline" else cfg.finetune
        train_set = source
        if method == "finetune":
            if init_checkpoint is None:
                raise ValueError("finetune needs init_checkpoint (the noisy baseline's checkpoint)")
            state = load_checkpoint(init_checkpoint, map_location="cpu",
                                    config=ck("noisy_baseline", cfg.baseline))
            features.load_state_dict(state["features"]), head.load_state_dict(state["head"])
            extra["init_accuracy"] = accuracy(features, head, test.x, test.y)
            train_set = target
        history = train_plain(features, head, train_set, tcfg, seed=seed, device=dev, on_epoch=tick,
                              checkpoint=partial, checkpoint_config=ck(method, tcfg))
    elif method in PEER_METHODS:
        tcfg = cfg.peer_settings
        result = train_peer(method, features, head, source, target, tcfg, cfg.peers, seed=seed, device=dev,
                            on_epoch=tick, checkpoint=partial,
                            checkpoint_config={**ck(method, tcfg), "peer": to_dict(cfg.peers)})
        history = result.history
        if result.scores is not None:
            table = source_alpha_table(split, result.scores, column="score")
            if "draws" in result.extra:
                table["draws"] = result.extra["draws"].astype(int)
            extra = _mean_by_truth(table, "score")
        # K x K matrices (GLC's estimated C, the learned Q); per-sample arrays went to the table
        extra.update({k: v.tolist() for k, v in result.extra.items() if k != "draws"})
    else:
        raise ValueError(f"method={method!r} is invalid; choose one of {NOISY_METHODS}")

    per_epoch = np.diff(times)
    metrics = {
        "method": method, "noise": noise, "seed": seed,
        "accuracy": accuracy(features, head, test.x, test.y),
        "realised_noise": float(split[split.role == "source"].noisy.mean()),
        "n_source": len(source), "n_target": len(target), "n_test": len(test),
        "epochs": tcfg.epochs,
        "epochs_this_call": len(history),
        "seconds_per_epoch": float(per_epoch.mean()) if len(per_epoch) else None,
        "history": [h.record() for h in history],
        **extra,
    }
    prov = provenance({"noisy": dict(mapping), "data": dict(data_cfg)}, method=method, noise=noise, seed=seed,
                      device=str(dev), trainer=to_dict(tcfg),
                      **({"peers": to_dict(cfg.peers)} if method in PEER_METHODS else {}))
    for path, _, _ in tables:
        write_csv(table, path, prov=prov)
    write_json(metrics, metrics_json, prov=prov)
    publish(partial, checkpoint)
    log.info("%s, noise %g, seed %d: test accuracy %.4f (%.1f s/epoch)", method, noise, seed, metrics["accuracy"],
             metrics["seconds_per_epoch"] or float("nan"))
    return metrics


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


def write_confusion_figure(confusion_csvs: list[str], noise_levels: list[float], outputs: list[str]) -> None:
    """One heatmap panel per noise level."""
    from soseleto.plots import confusion_heatmaps

    fig = confusion_heatmaps({noise_tag(n): read_confusion(p) for n, p in zip(noise_levels, confusion_csvs)})
    prov = provenance(noise_levels=list(noise_levels), inputs=[str(p) for p in confusion_csvs])
    for out in outputs:
        save_figure(fig, out, prov=prov)
