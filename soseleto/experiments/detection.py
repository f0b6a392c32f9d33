"""Label-error detection beyond SOSELETO's alpha: cleanlab on out-of-fold probabilities of the
noisy baseline (Northcutt et al.), on the noisy source of a Table 1 split."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold
from torch import nn

from soseleto.config import DataConfig, NoisySplitConfig, PlainConfig
from soseleto.core.checkpoint import discard, identity, resume_path
from soseleto.core.device import resolve_device
from soseleto.core.evaluate import predict_proba
from soseleto.core.loop import Labeled
from soseleto.core.models import build
from soseleto.experiments.noisy import load_sets, source_alpha_table
from soseleto.io import provenance, write_csv
from soseleto.methods.plain import train_plain

log = logging.getLogger(__name__)


def run_cleanlab(baseline: PlainConfig, *, folds: int, split_cfg: NoisySplitConfig, model: str, data: DataConfig,
                 noise: float, seed: int, device: str, split_csv: str, scores_csv: str,
                 weight_init: str = "pytorch", input_scale: str = "standard") -> pd.DataFrame:
    """cleanlab on the noisy source of one (noise level, seed): out-of-fold softmax of ``folds``
    networks (initial weights ``weight_init``, inputs on ``input_scale``) trained with the noisy ``baseline`` settings, then self-confidence (``score``) and
    ``find_label_issues`` (``flagged``).

    Writes ``scores_csv`` (index, label, true_label, noisy, score, flagged; source order). Each
    fold's resumable state lives in ``<scores_csv>.resume.fold<k>``, so a killed or stopped job
    resumes; these files are removed once ``scores_csv`` is written.
    """
    dev = resolve_device(device)
    split = pd.read_csv(split_csv)
    data_sets = load_sets(split_cfg, data, split, input_scale)
    source = data_sets.source

    def make_model(model_seed: int):
        features, (head,) = build(model, data_sets.shape, [data_sets.n_classes], seed=model_seed,
                                  weight_init=weight_init)
        return features, head

    log.info("cleanlab, noise %g, seed %d on %s: %d source, %d folds", noise, seed, dev, len(source), folds)
    ident = identity("cleanlab", baseline, seed=seed, folds=folds, noise=noise, split=split_cfg, model=model,
                     weight_init=weight_init, input_scale=input_scale, data=data)
    probs = out_of_fold_probs(make_model, source, baseline, folds=folds, seed=seed, device=dev,
                              checkpoint=resume_path(scores_csv), identity=ident)
    quality, flagged = cleanlab_scores(source.y.numpy(), probs)
    table = source_alpha_table(split, quality, column="score").assign(flagged=flagged)
    prov = provenance({"baseline": baseline, "split": split_cfg, "model": model, "weight_init": weight_init,
                       "input_scale": input_scale, "data": data}, method="cleanlab",
                      noise=noise, seed=seed, device=str(dev), folds=folds)
    write_csv(table, scores_csv, prov=prov)
    discard(resume_path(scores_csv))
    log.info("cleanlab, noise %g, seed %d: %d of %d flagged", noise, seed, int(flagged.sum()), len(flagged))
    return table


def cleanlab_scores(noisy_labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's self-confidence ``(N,)`` (``pred_probs[j, label_j]``, higher = clean) and its
    ``find_label_issues`` mask ``(N,)`` (default ``prune_by_noise_rate``), single process.

    ``pred_probs`` ``(N, K)`` must be out-of-sample (see :func:`out_of_fold_probs`).
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(noisy_labels, dtype=np.int64)
    probs = np.asarray(pred_probs, dtype=float)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"noisy_labels {labels.shape} and pred_probs {probs.shape} must be (N,) and (N, K)")
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    mask = find_label_issues(labels, probs, n_jobs=1)
    return np.asarray(quality, dtype=float), np.asarray(mask, dtype=bool)


def out_of_fold_probs(
    make_model: Callable[[int], tuple[nn.Module, nn.Module]],
    source: Labeled,
    cfg: PlainConfig,
    *,
    folds: int,
    seed: int,
    device: torch.device | str = "cpu",
    checkpoint: str | None = None,
    identity: dict | None = None,
) -> np.ndarray:
    """Softmax ``(N, K)`` of each source sample by a network that never saw it (the noisy baseline).

    The source is split into ``folds`` stratified folds (by its given labels, shuffled with
    ``seed``); for each, a fresh ``make_model(seed * 1000 + fold)`` (initialised from that seed) is
    trained with :func:`soseleto.methods.plain.train_plain` on the other folds and predicts the
    held-out one. ``checkpoint``: a path prefix; fold ``k`` resumes from ``<checkpoint>.fold<k>``
    (written for ``identity`` and the fold).
    """
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r} is invalid: expected an integer >= 2")
    y = source.y.cpu().numpy()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = None
    for fold, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        features, head = make_model(seed * 1000 + fold)
        tr, held = torch.as_tensor(train_idx), torch.as_tensor(held_idx)
        train_plain(features, head, Labeled(source.x[tr], source.y[tr]), cfg, seed=seed * 1000 + fold, device=device,
                    checkpoint=None if checkpoint is None else f"{checkpoint}.fold{fold}",
                    identity={"run": identity, "fold": fold}, name=f"cleanlab fold {fold + 1}/{folds}")
        probs = predict_proba(features, head, source.x[held]).cpu().double().numpy()
        if out is None:
            out = np.zeros((len(y), probs.shape[1]))
        out[held_idx] = probs
        log.info("out-of-fold probabilities: fold %d/%d done", fold + 1, folds)
    return out
