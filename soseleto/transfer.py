"""Section 4.3 / Table 2 and Appendix C: transfer from SVHN digits to MNIST 5-9 with LeNet.

Data (all index files are written by the workflow before any training job):

* source: SVHN train images whose digit is in ``source_classes`` (0-4 for Table 2, 0-9 for
  Appendix C), turned into ``image_size`` x ``image_size`` gray images to match MNIST, labels
  remapped to ``0..K_s-1``;
* target: ``n_target`` MNIST train images of ``target_classes`` (5-9), class-balanced, drawn per
  seed, labels remapped to ``0..K_t-1``;
* test: every MNIST test image of ``target_classes``;
* pool (two-stage SOSELETO only): the remaining MNIST train images of ``target_classes``, whose
  labels are never used for training (only to report how good the pseudo-labels were).

Each set is standardised with statistics of images a method may use: the source with its own
mean/std, every MNIST set with the mean/std of the ``n_target`` labelled target images, so no
method peeks at unlabelled MNIST data.

Methods (one job per ``(n_target, method, seed)``): ``target_only`` (LeNet on the target set
alone), ``fine_tuning`` (``pretrain`` on the source, then every layer trained on the target with a
fresh classifier), ``soseleto`` (transfer mode: shared features, separate source and target
classifiers) and ``two_stage`` (stage 1 = the ``soseleto`` run of the same ``(n_target, seed)``;
its target network labels the pool, which becomes the noisy source of a noisy-label-mode run with
the same clean target).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from soseleto import data as D
from soseleto.baselines import train_plain
from soseleto.checkpoint import load_checkpoint, publish, resume_path
from soseleto.config import TransferConfig, TrainerConfig, from_dict, to_dict
from soseleto.devices import resolve_device
from soseleto.evaluate import accuracy, predict
from soseleto.io import provenance, write_csv, write_json
from soseleto.models import build_classifier, build_features
from soseleto.rng import seeded
from soseleto.trainer import EpochStats, Labeled, Soseleto

log = logging.getLogger(__name__)

SOURCE, TARGET = "svhn", "mnist"


def config_from_mapping(mapping: Mapping[str, Any]) -> TransferConfig:
    """The ``transfer:`` section of the workflow config (the ``seeds`` lists are the workflow's business)."""
    mapping = {k: v for k, v in mapping.items() if k != "seeds"}
    if isinstance(mapping.get("appendix_c"), Mapping):
        mapping["appendix_c"] = {k: v for k, v in mapping["appendix_c"].items() if k != "seeds"}
    return from_dict(TransferConfig, mapping, where="transfer.")


def classes_tag(classes) -> str:
    """File-name tag of a digit set: ``(0, 1, 2, 3, 4) -> '01234'``."""
    return "".join(str(int(c)) for c in classes)


# -- data ----------------------------------------------------------------------------------------
def source_split(y: torch.Tensor, classes) -> pd.DataFrame:
    """SVHN train indices of ``classes``: columns ``svhn_index``, ``label`` (the original digit)."""
    idx = _in_classes(y, classes)
    return pd.DataFrame({"svhn_index": idx.numpy(), "label": y[idx].numpy()})


def target_split(y: torch.Tensor, classes, n_target: int, *, seed: int) -> pd.DataFrame:
    """``n_target`` class-balanced MNIST train indices: ``mnist_index``, ``label``, ``target_label``.

    The draw for ``n_target = 20`` with a seed is a subset of the draw for 25 with the same seed
    (the same per-class permutation, cut shorter), which pairs the two columns of Table 2.
    """
    classes = list(classes)
    if n_target % len(classes):
        raise ValueError(f"n_target={n_target} is not a multiple of the {len(classes)} target classes")
    idx = D.class_balanced_indices(y, n_target // len(classes), seed=seed, classes=classes)
    return _indexed(y, idx, classes)


def test_split(y: torch.Tensor, classes) -> pd.DataFrame:
    """All MNIST test indices of ``classes``: ``mnist_index``, ``label``, ``target_label``."""
    return _indexed(y, _in_classes(y, classes), list(classes))


def _in_classes(y: torch.Tensor, classes) -> torch.Tensor:
    """Indices ``(M,)`` of the labels in ``classes``, ascending."""
    return torch.nonzero(torch.isin(y, torch.as_tensor(list(classes)))).flatten()


def _indexed(y: torch.Tensor, idx: torch.Tensor, classes: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"mnist_index": idx.numpy(), "label": y[idx].numpy(),
                         "target_label": D.remap_labels(y[idx], classes).numpy()})


def write_split(kind: str, data_cfg: Mapping[str, Any], out_csv: str, *, classes, n_target: int = 0, seed: int = 0) -> pd.DataFrame:
    """Write one index file: ``kind`` is ``source`` (SVHN train), ``target`` (MNIST train) or ``test``."""
    if kind == "source":
        df = source_split(D.load_configured(SOURCE, "train", data_cfg)[1], classes)
    elif kind == "target":
        df = target_split(D.load_configured(TARGET, "train", data_cfg)[1], classes, n_target, seed=seed)
    elif kind == "test":
        df = test_split(D.load_configured(TARGET, "test", data_cfg)[1], classes)
    else:
        raise ValueError(f"kind={kind!r} is invalid; choose 'source', 'target' or 'test'")
    counts = df["label"].value_counts().sort_index().to_dict()
    log.info("%s split: %d images, per class %s", kind, len(df), counts)
    write_csv(df, out_csv, prov=provenance({"data": dict(data_cfg), "classes": list(classes), "n_target": n_target}, seed=seed))
    return df


@dataclass
class TransferSets:
    source: Labeled | None  # standardised gray (n_s, 1, S, S), labels 0..K_s-1
    source_index: np.ndarray | None  # (n_s,) SVHN train index of each source row
    source_label: np.ndarray | None  # (n_s,) original SVHN digit
    target: Labeled | None  # (n_t, 1, S, S), labels 0..K_t-1
    target_index: np.ndarray | None  # (n_t,) MNIST train indices
    test: Labeled | None  # MNIST test images of the target classes
    stats: tuple[torch.Tensor, torch.Tensor] | None  # target mean/std, (1,) each, applied to every MNIST set
    size: int


def prepare(data_cfg: Mapping[str, Any], *, size: int, target_csv: str | None = None, test_csv: str | None = None,
            source_csv: str | None = None) -> TransferSets:
    """Load the images named by the index files and standardise them (see the module docstring).

    The target and test files go together; without them (pre-training) only the source is loaded.
    """
    target = test = stats = t_index = None
    if target_csv is not None:
        tsplit, esplit = pd.read_csv(target_csv), pd.read_csv(test_csv)
        x, y = D.load_configured(TARGET, "train", data_cfg)
        xt = _gray(x[_rows(tsplit.mnist_index, y, tsplit.label, target_csv)], size)
        stats = D.channel_stats(xt)
        xe, ye = D.load_configured(TARGET, "test", data_cfg)
        xe = _gray(xe[_rows(esplit.mnist_index, ye, esplit.label, test_csv)], size)
        target = Labeled(D.to_float(xt, mean=stats[0], std=stats[1]), torch.tensor(tsplit.target_label.to_numpy()))
        test = Labeled(D.to_float(xe, mean=stats[0], std=stats[1]), torch.tensor(esplit.target_label.to_numpy()))
        t_index = tsplit.mnist_index.to_numpy()
    source = s_index = s_label = None
    if source_csv is not None:
        ssplit = pd.read_csv(source_csv)
        xs, ys = D.load_configured(SOURCE, "train", data_cfg)
        xs = _gray(xs[_rows(ssplit.svhn_index, ys, ssplit.label, source_csv)], size)
        classes = sorted(ssplit.label.unique().tolist())
        mean, std = D.channel_stats(xs)
        source = Labeled(D.to_float(xs, mean=mean, std=std), D.remap_labels(torch.tensor(ssplit.label.to_numpy()), classes))
        s_index, s_label = ssplit.svhn_index.to_numpy(), ssplit.label.to_numpy()
    return TransferSets(source, s_index, s_label, target, t_index, test, stats, size)


def unlabelled_pool(data_cfg: Mapping[str, Any], sets: TransferSets, classes) -> tuple[Labeled, np.ndarray]:
    """The MNIST train images of ``classes`` outside the target set, standardised like the target.

    Returns the pool (its labels are the *true* remapped labels, for reporting only) and its
    MNIST train indices.
    """
    x, y = D.load_configured(TARGET, "train", data_cfg)
    idx = _in_classes(y, classes)
    idx = idx[~torch.isin(idx, torch.tensor(sets.target_index))]
    xp = D.to_float(_gray(x[idx], sets.size), mean=sets.stats[0], std=sets.stats[1])
    return Labeled(xp, D.remap_labels(y[idx], list(classes))), idx.numpy()


def _gray(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if tuple(x.shape[1:]) == (1, size, size) else D.to_gray_resized(x, (size, size))


def _rows(index: pd.Series, y: torch.Tensor, labels: pd.Series, path: str) -> torch.Tensor:
    """Indices from an index file, checked against the loaded labels (a split written for other data is an error)."""
    idx = torch.tensor(index.to_numpy())
    if len(idx) and (int(idx.max()) >= len(y) or not np.array_equal(y[idx].numpy(), labels.to_numpy())):
        raise ValueError(f"index file {path!r} does not match the loaded data set (written for other data?); delete it")
    return idx


# -- models and runs -----------------------------------------------------------------------------
def build(cfg: TransferConfig, n_classes: list[int], *, seed: int) -> tuple[nn.Module, list[nn.Module]]:
    """LeNet features and one classifier per entry of ``n_classes``, initialised under ``seed``."""
    with seeded(seed):
        features, dim = build_features(cfg.model, (1, cfg.image_size, cfg.image_size))
        heads = [build_classifier(dim, k) for k in n_classes]
    return features, heads


def checkpoint_config(cfg: TransferConfig, method: str, trainer: TrainerConfig, *, seed: int, n_target: int | None,
                      data_cfg: Mapping[str, Any]) -> dict:
    """What a checkpoint must have been written for to be resumed or reused (fine-tuning, stage 2)."""
    return {"method": method, "trainer": to_dict(trainer), "seed": seed, "n_target": n_target, "model": cfg.model,
            "image_size": cfg.image_size, "data": {k: data_cfg.get(k) for k in ("source", "generated_train")}}


@dataclass
class RunResult:
    accuracy: float  # on the MNIST test images of the target classes
    history: list[EpochStats]
    alpha: pd.DataFrame | None = None  # one row per source instance (SOSELETO runs)
    extra: dict | None = None


def run_target_only(cfg: TransferConfig, sets: TransferSets, *, seed: int, device, checkpoint=None, ck=None) -> RunResult:
    features, (head,) = build(cfg, [len(cfg.target_classes)], seed=seed)
    hist = train_plain(features, head, sets.target, cfg.target_only, seed=seed, device=device,
                       checkpoint=checkpoint, checkpoint_config=ck)
    return RunResult(accuracy(features, head, sets.test.x, sets.test.y), hist)


def run_pretrain(cfg: TransferConfig, sets: TransferSets, *, seed: int, device, checkpoint, ck) -> RunResult:
    """The first half of fine-tuning: plain SGD on the source; 'accuracy' is on the source itself."""
    features, (head,) = build(cfg, [len(cfg.source_classes)], seed=seed)
    hist = train_plain(features, head, sets.source, cfg.pretrain, seed=seed, device=device,
                       checkpoint=checkpoint, checkpoint_config=ck)
    return RunResult(accuracy(features, head, sets.source.x, sets.source.y), hist)


def run_fine_tuning(cfg: TransferConfig, sets: TransferSets, *, seed: int, device, pretrained: str, pretrained_ck: dict,
                    checkpoint=None, ck=None) -> RunResult:
    """Pre-trained features, a fresh target classifier, every layer trained on the target set."""
    features, (head,) = build(cfg, [len(cfg.target_classes)], seed=seed)
    features.load_state_dict(load_checkpoint(pretrained, config=pretrained_ck)["features"])
    hist = train_plain(features, head, sets.target, cfg.finetune, seed=seed, device=device,
                       checkpoint=checkpoint, checkpoint_config=ck)
    return RunResult(accuracy(features, head, sets.test.x, sets.test.y), hist)


def run_soseleto(cfg: TransferConfig, sets: TransferSets, *, seed: int, device, checkpoint=None, ck=None) -> RunResult:
    """SOSELETO in transfer mode; ``alpha`` rows: ``svhn_index``, ``label`` (the SVHN digit), ``alpha``."""
    n_s = len(np.unique(sets.source_label))
    features, (head_s, head_t) = build(cfg, [n_s, len(cfg.target_classes)], seed=seed)
    trainer = Soseleto(features, head_s, head_t, n_source=len(sets.source), n_target=len(sets.target),
                       cfg=cfg.soseleto, device=device)
    hist = trainer.fit(sets.source, sets.target, seed=seed, checkpoint=checkpoint, checkpoint_config=ck)
    alpha = pd.DataFrame({"svhn_index": sets.source_index, "label": sets.source_label, "alpha": trainer.alpha.cpu().numpy()})
    return RunResult(trainer.accuracy(sets.test), hist, alpha)


def run_two_stage(cfg: TransferConfig, sets: TransferSets, pool: Labeled, pool_index: np.ndarray, *, seed: int, device,
                  stage1: str, stage1_ck: dict, checkpoint=None, ck=None) -> RunResult:
    """Stage 2: pseudo-label ``pool`` with the stage-1 target network, then noisy-label SOSELETO."""
    k_t = len(cfg.target_classes)
    state = load_checkpoint(stage1, config=stage1_ck)
    f1, (h1,) = build(cfg, [k_t], seed=seed)
    f1.load_state_dict(state["features"]), h1.load_state_dict(state["target_head"])
    pseudo = predict(f1.to(device), h1.to(device), pool.x).cpu()
    pseudo_acc = float((pseudo == pool.y).float().mean())
    log.info("stage 1 pseudo-labels %d pool images, %.4f of them correctly", len(pool), pseudo_acc)
    if cfg.two_stage_init == "stage1":
        features, head = f1, h1
    else:
        features, (head,) = build(cfg, [k_t], seed=seed)
    trainer = Soseleto(features, head, None, n_source=len(pool), n_target=len(sets.target), cfg=cfg.two_stage, device=device)
    hist = trainer.fit(Labeled(pool.x, pseudo), sets.target, seed=seed, checkpoint=checkpoint, checkpoint_config=ck)
    a = trainer.alpha.cpu().numpy()
    right = (pseudo == pool.y).numpy()
    alpha = pd.DataFrame({"mnist_index": pool_index, "pseudo_label": pseudo.numpy(), "true_label": pool.y.numpy(), "alpha": a})
    extra = {"n_pool": len(pool), "pseudo_label_accuracy": pseudo_acc,
             "mean_alpha_correct_pseudo": float(a[right].mean()) if right.any() else None,
             "mean_alpha_wrong_pseudo": float(a[~right].mean()) if (~right).any() else None}
    return RunResult(trainer.accuracy(sets.test), hist, alpha, extra)


# -- workflow entry point ------------------------------------------------------------------------
def rule_params(mapping: Mapping[str, Any], *sections: str) -> dict:
    """The part of the ``transfer:`` section a training job uses (as its Snakemake ``params``),
    so that editing one method's settings reruns only that method's jobs."""
    keys = ("source_classes", "target_classes", "image_size", "model", *sections)
    return {k: mapping[k] for k in keys if k in mapping}


def run_and_save(mapping: Mapping[str, Any], data_cfg: Mapping[str, Any], *, method: str, seed: int, device: str,
                 inputs: Mapping[str, str], outputs: Mapping[str, str], n_target: int | None = None) -> dict:
    """Run one job and write ``outputs['metrics']`` (JSON), ``outputs['checkpoint']`` and, for
    SOSELETO runs, ``outputs['alpha']`` (CSV). While training, the resumable state lives in
    ``<checkpoint>.resume`` (see :func:`soseleto.checkpoint.resume_path`), so a killed job resumes.

    ``method`` is one of ``target_only``, ``pretrain``, ``fine_tuning``, ``soseleto``,
    ``two_stage`` or ``appendix_c``; ``inputs`` holds the index files (``source``, ``target``,
    ``test``) and, for fine-tuning and two-stage, the checkpoint they start from (``pretrained``,
    ``stage1``).
    """
    cfg = config_from_mapping(mapping)
    dev = resolve_device(device)
    if method == "appendix_c":
        n_target = cfg.appendix_c.n_target
    elif method == "pretrain":
        n_target = None  # one pre-trained network per seed serves every n_target
    trainer = {"target_only": cfg.target_only, "pretrain": cfg.pretrain, "fine_tuning": cfg.finetune,
               "soseleto": cfg.soseleto, "appendix_c": cfg.soseleto, "two_stage": cfg.two_stage}
    if method not in trainer:
        raise ValueError(f"method={method!r} is invalid; choose one of {sorted(trainer)}")
    sets = prepare(data_cfg, size=cfg.image_size, target_csv=inputs.get("target"), test_csv=inputs.get("test"),
                   source_csv=inputs.get("source"))
    ck = checkpoint_config(cfg, method, trainer[method], seed=seed, n_target=n_target, data_cfg=data_cfg)
    log.info("%s n_target=%s seed=%d on %s: %s", method, n_target, seed, dev, trainer[method])
    resume = resume_path(outputs["checkpoint"])
    common = {"seed": seed, "device": dev, "checkpoint": resume, "ck": ck}
    if method == "target_only":
        res = run_target_only(cfg, sets, **common)
    elif method == "pretrain":
        res = run_pretrain(cfg, sets, **common)
    elif method == "fine_tuning":
        pre_ck = checkpoint_config(cfg, "pretrain", cfg.pretrain, seed=seed, n_target=None, data_cfg=data_cfg)
        res = run_fine_tuning(cfg, sets, pretrained=inputs["pretrained"], pretrained_ck=pre_ck, **common)
    elif method in ("soseleto", "appendix_c"):
        res = run_soseleto(cfg, sets, **common)
    else:
        pool, pool_index = unlabelled_pool(data_cfg, sets, cfg.target_classes)
        s1_ck = checkpoint_config(cfg, "soseleto", cfg.soseleto, seed=seed, n_target=n_target, data_cfg=data_cfg)
        res = run_two_stage(cfg, sets, pool, pool_index, stage1=inputs["stage1"], stage1_ck=s1_ck, **common)
    metrics = {"method": method, "n_target": n_target, "seed": seed, "accuracy": res.accuracy,
               "accuracy_on": "source train" if method == "pretrain" else "MNIST test, target classes",
               "n_source": None if sets.source is None else len(sets.source),
               "n_test": None if sets.test is None else len(sets.test),
               **(res.extra or {}),
               "history": [h.record() for h in res.history]}
    prov = provenance({"transfer": dict(mapping), "data": dict(data_cfg)}, seed=seed, method=method, device=str(dev))
    if res.alpha is not None:
        write_csv(res.alpha, outputs["alpha"], prov=prov)
    write_json(metrics, outputs["metrics"], prov=prov)
    publish(resume, outputs["checkpoint"])
    log.info("%s n_target=%s seed=%d: accuracy %.4f", method, n_target, seed, res.accuracy)
    return metrics
