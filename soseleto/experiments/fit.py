"""``soseleto fit``: SOSELETO on the user's own source, target and test sets.

Everything is loaded and checked before training starts (see :mod:`soseleto.data.user`), and the
outputs are written atomically at the end, so a failed run leaves no half-written file:

* ``weights.csv`` -- one row per source sample: ``index`` (row in the source set), ``label`` (as
  given there), ``alpha`` (its learned weight) and ``rank`` (1 = lowest alpha = most suspect);
  ImageFolder sources add the image ``path``; with the source's true labels (``--true-labels``)
  also ``true_label`` and ``suspect`` (alpha below ``--flag-threshold``);
* ``model.pt`` -- features, heads, the preprocessing (gray, resizes, normalisation), the labels and
  the settings (:func:`soseleto.load` / ``soseleto predict`` use it on new images);
* ``metrics.json`` -- accuracies, alpha statistics and the per-epoch history, with provenance;
  with true labels a ``detection`` block: precision, recall and F1 of flagging the mislabeled
  source samples at the threshold, AUROC and average precision of the ranking by alpha; its
  ``warnings`` say when the run did not learn (:func:`soseleto.experiments.fit_model.learning_warnings`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from soseleto.config import FIT_MODES, FitConfig, SoseletoConfig, to_dict
from soseleto.core.checkpoint import check_config, discard, safe_load, save_checkpoint
from soseleto.core.device import resolve_device
from soseleto.core.loop import EpochStats, Labeled, runtime, runtime_mismatch, train
from soseleto.core.models import build, build_classifier, build_features
from soseleto.core.soseleto import Soseleto
from soseleto import validate
from soseleto.data.images import channel_stats, class_balanced_indices, to_float
from soseleto.data.stream import StreamedImages, files_fingerprint, sample
from soseleto.data.user import ImageSet, check_labels, harmonise, load_set, load_streamed
from soseleto.experiments import fit_model
from soseleto.experiments.fit_model import Problem
from soseleto.experiments.fit_session import (RESUME_NAME, STAGING_PREFIX, Progress, check_model_state, check_out,
                                            check_shapes, fingerprint, is_terminal, out_lock, run_identity)
from soseleto.io import no_space, provenance, write_csv, write_json
from soseleto.metrics import detection_metrics

log = logging.getLogger(__name__)

MODES = FIT_MODES


def prepare(source: str, target: str, test: str | None, *, mode: str, data_dir: str | Path = FitConfig.data_dir,
            download: bool = FitConfig.download, gray: bool = FitConfig.gray, size: tuple[int, int] | None = None,
            target_per_class: int | None = None, seed: int = FitConfig.seed, stream: bool = FitConfig.stream
            ) -> Problem:
    """Load and check the three sets. ``noisy``: one classifier, so target and test labels must be
    source classes, and every target class must have source samples; ``transfer``: test labels
    must be target classes. ``target_per_class`` keeps that many random target samples of each
    class (drawn with ``seed``). Target classes the target lacks (noisy mode) and classes of one
    target sample are accepted with a warning (:attr:`Problem.warnings`). ``stream``: the source
    (an ImageFolder) is listed here and decoded batch by batch while training, for sets larger
    than memory (:func:`soseleto.data.user.load_streamed`)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is invalid; choose one of {MODES}")
    src = load_streamed(source, size=size, gray=gray) if stream else None
    sets = [load_set(s, data_dir=data_dir, download=download, size=size) for s in (source, target, test)
            if s and not (stream and s is source)]
    harmonise(sets, gray=gray, size=size, like=src)
    if src is not None:
        sets.insert(0, src)
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
    return Problem(src, tgt, tst, k_s, k_t, class_warnings(src, tgt, k_t, mode=mode), gray=gray, size=size)


def class_warnings(src: ImageSet, tgt: ImageSet, k_t: int, *, mode: str) -> list[str]:
    """Refuse (noisy mode) a target class without source samples; return, and log, a warning for
    source classes the target lacks (noisy mode) and for target classes of a single sample."""
    n_src = torch.bincount(src.y, minlength=k_t)
    n_tgt = torch.bincount(tgt.y, minlength=k_t)
    warnings = []
    if mode == "noisy":
        orphan = [c for c in range(k_t) if n_tgt[c] > 0 and n_src[c] == 0]
        if orphan:
            raise ValueError(f"the target {tgt.spec.text!r} has class(es) {orphan} but the source {src.spec.text!r} "
                             "has no sample of them; noisy mode learns one classifier from the source's samples")
        absent = [c for c in range(k_t) if n_tgt[c] == 0 and n_src[c] > 0]
        if absent:
            warnings.append(f"the target {tgt.spec.text!r} covers only {k_t - len(absent)} of the source's {k_t} "
                            f"classes (none of {absent}): alpha of source samples of those classes is steered only "
                            "by the other classes' target images")
    single = [c for c in range(k_t) if n_tgt[c] == 1]
    if single:
        warnings.append(f"the target {tgt.spec.text!r} has a single sample of class(es) {single}: its accuracy "
                        "and alpha's direction for those classes rest on one image each")
    for w in warnings:
        log.warning("fit: %s", w)
    return warnings


def run(cfg: FitConfig, *, on_epoch: Callable[[EpochStats], None] | None = None) -> dict:
    """``soseleto fit``: check ``cfg.out`` (before the data are read), load and check the sets
    (:func:`prepare`), then train and write the outputs (:func:`fit_problem`); returns the metrics."""
    check_out(cfg.out)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    problem = prepare(cfg.source, cfg.target, cfg.test, mode=cfg.mode, data_dir=cfg.data_dir, download=cfg.download,
                      gray=cfg.gray, size=cfg.size, target_per_class=cfg.target_per_class, seed=cfg.seed,
                      stream=cfg.stream)
    true_labels = None if cfg.true_labels is None else read_true_labels(cfg.true_labels, problem.source)
    return fit_problem(problem, cfg.out, cfg=cfg.trainer, model=cfg.model, seed=cfg.seed, device=cfg.device,
                       true_labels=true_labels, flag_threshold=cfg.flag_threshold, on_epoch=on_epoch,
                       workers=cfg.workers)


def fit_problem(problem: Problem, outdir: str | Path, *, cfg: SoseletoConfig, model: str = FitConfig.model,
                seed: int = FitConfig.seed, device: str = FitConfig.device, true_labels: np.ndarray | None = None,
                flag_threshold: float = FitConfig.flag_threshold, on_epoch: Callable[[EpochStats], None] | None = None,
                workers: int = FitConfig.workers) -> dict:
    """Train SOSELETO on ``problem`` and write ``weights.csv``, ``model.pt``, ``metrics.json`` to ``outdir``.

    ``model``: ``auto`` (which may scale small images up first) or a network that takes the
    images as they are (:func:`soseleto.experiments.fit_model.choose`); a run that did not learn
    ends with warnings, in the log and in ``metrics.json``.
    ``true_labels`` ``(N_s,)``: the true label of each source sample (see :func:`read_true_labels`);
    when given, alpha is scored as a detector of the mislabeled samples, flagged at
    ``alpha < flag_threshold``. ``outdir`` is locked while the run writes there; its resumable
    state goes to ``outdir/.resume.pt`` after every epoch, a later run of the same settings and
    data resumes from it, and it is removed once the outputs are written. ``on_epoch`` is called
    with each epoch's stats; ``workers``: processes that decode a streamed source's images.
    """
    out = check_out(outdir)
    model = fit_model.choose(problem, model)
    dev = resolve_device(device)
    trainer, tensors = _trainer(problem, cfg, model=model, seed=seed, device=dev, workers=workers)
    settings = {"mode": mode_name(cfg), "model": model, "seed": seed, "trainer": to_dict(cfg)}
    ident = run_identity(settings, {n: _fingerprint(getattr(problem, n)) for n in ("source", "target", "test")})
    sets = {"source": problem.source.spec.text, "target": problem.target.spec.text,
            "test": problem.test.spec.text if problem.test else None}
    with out_lock(out):
        resume = out / RESUME_NAME
        done = _resumable(resume, ident, out, trainer)
        _rehearse(out, trainer, problem, {**settings, **sets}, tensors["stats"], device=str(dev))
        _announce(problem, cfg, model=model, device=dev, resume=resume if done else None, done=done)
        history = _train(trainer, tensors, cfg, seed=seed, device=dev, resume=resume, identity=ident,
                         on_epoch=on_epoch, done=done)
        metrics, weights = _results(problem, trainer, tensors["source"], history, cfg, model=model)
        if true_labels is not None:
            metrics["detection"] = _detection(weights, problem.source, true_labels, flag_threshold)
        learned = fit_model.learning_warnings(
            history, n_source_classes=problem.n_source_classes, source_batch=cfg.source_batch,
            n_source=len(problem.source), loss_scale=cfg.loss_scale, test_y=problem.test.y if problem.test else None)
        metrics["warnings"] += learned
        _write(out, trainer, problem, weights, metrics, {**settings, **sets}, tensors["stats"], device=str(dev),
               resume=resume)
        discard(resume)
    fit_model.announce(learned)
    return metrics


def _fingerprint(s: ImageSet | None) -> str | None:
    if s is None:
        return None
    return fingerprint(s.x, s.y) if s.x is not None else files_fingerprint(s.paths, s.y)


def _resumable(resume: Path, identity: dict, out: Path, trainer: Soseleto) -> int:
    """Epochs already done by the unfinished run in ``out`` (0 without one); raises ``ValueError``
    when its resume file was written for other settings or data, or under another thread count,
    device, dtype or deterministic-algorithms setting (:func:`soseleto.core.loop.runtime`)."""
    if not resume.exists():
        return 0
    try:
        state = safe_load(resume)
    except ValueError as err:
        raise ValueError(f"--out {str(out)!r} holds a resume file that cannot be read: {err}; delete it to start "
                         "afresh, or choose another --out") from None
    try:
        state = check_config(state, resume, config=identity)
    except ValueError as err:
        raise ValueError(f"--out {str(out)!r} holds an unfinished run of other settings or data: {err} "
                         f"(or choose another --out)") from None
    saved = state.get("runtime")
    differs = runtime_mismatch(saved, runtime(trainer.device, trainer))
    if differs:
        way = [f"--threads {saved['threads']}"] if saved.get("threads") not in (None, torch.get_num_threads()) else []
        way += [f"on the device it started on ({saved['device']})"] if saved.get("device") != runtime(trainer.device)["device"] else []
        raise ValueError(f"--out {str(out)!r} holds an unfinished run started with {differs}: its numbers depend on "
                         "these (on a CPU the thread count splits every sum), so resuming it here would match neither "
                         f"run. Resume it with the same command {' and '.join(way) or 'in the same setting'}; or choose "
                         f"another --out, or delete {str(resume)!r} to start afresh")
    return len(state.get("history", []))


def mode_name(cfg: SoseletoConfig) -> str:
    """``noisy`` (one classifier shared by source and target) or ``transfer`` (a head each)."""
    return "noisy" if cfg.shared_classifier else "transfer"


def _announce(problem: Problem, cfg: SoseletoConfig, *, model: str, device, resume: Path | None, done: int) -> None:
    """The first log line: sizes, classes, steps per epoch, device and threads (before any epoch ends)."""
    mode = mode_name(cfg)
    n_test = len(problem.test) if problem.test else 0
    steps = math.ceil(len(problem.source) / cfg.source_batch)
    threads = f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else ""
    log.info("fit (%s mode): %d source, %d target, %d test samples; %d source classes, %d target classes; "
             "images %s; model %s; %d steps per epoch x %d epochs; device %s%s",
             mode, len(problem.source), len(problem.target), n_test, problem.n_source_classes,
             problem.n_target_classes, problem.source.shape, model, steps, cfg.epochs, device, threads)
    if resume is not None:
        log.info("fit: resuming the unfinished run in %s after epoch %d/%d", resume, done, cfg.epochs)


def _train(trainer: Soseleto, tensors: dict, cfg: SoseletoConfig, *, seed: int, device, resume: Path,
           identity: dict, on_epoch, done: int) -> list[EpochStats]:
    """The epochs (resumed from ``resume`` when it exists), with a progress bar on a terminal."""
    monitors = {"target_accuracy": lambda: trainer.accuracy(tensors["target"])}  # on images it trains on
    if "test" in tensors:
        monitors["test_accuracy"] = lambda: trainer.accuracy(tensors["test"])
    method = trainer
    if is_terminal():
        method = Progress(trainer, steps_per_epoch=math.ceil(len(tensors["source"]) / cfg.source_batch),
                          epochs=cfg.epochs, first_epoch=done + 1)
    return train(method, tensors["source"], tensors["target"], schedule=cfg.schedule, seed=seed, device=device,
                 checkpoint=resume, identity=identity, monitors=monitors, on_epoch=on_epoch, name="fit")


def _results(problem: Problem, trainer: Soseleto, source: Labeled, history: list[EpochStats], cfg: SoseletoConfig,
             *, model: str) -> tuple[dict, pd.DataFrame]:
    """``metrics.json``'s content and the weights table (ties in alpha broken by the final loss)."""
    alpha = trainer.alpha.cpu()
    loss = final_losses(trainer, source)
    at_min, at_max = int((alpha <= cfg.alpha_min).sum()), int((alpha >= cfg.alpha_max).sum())
    if at_min > 1:
        log.info("fit: %d source samples end at alpha = %g (the clip floor); weights.csv ranks them by their "
                 "final loss, highest first", at_min, cfg.alpha_min)
    metrics = {
        "mode": mode_name(cfg), "model": model, "epochs": cfg.epochs,
        "n_source": len(problem.source), "n_target": len(problem.target), "n_test": len(problem.test) if problem.test else 0,
        "n_source_classes": problem.n_source_classes, "n_target_classes": problem.n_target_classes,
        "target_accuracy": history[-1].values["target_accuracy"],
        "test_accuracy": history[-1].values.get("test_accuracy"),
        "alpha": {"mean": float(alpha.mean()), "min": float(alpha.min()), "max": float(alpha.max()),
                  "fraction_below_0.1": float((alpha < 0.1).float().mean()),
                  "n_at_min": at_min, "n_at_max": at_max, "tie_break": "final_loss"},
        "warnings": list(problem.warnings),
        "history": [h.record() for h in history],
    }
    return metrics, weights_table(problem.source, alpha, loss)


def final_losses(trainer: Soseleto, source: Labeled | StreamedImages, *, batch: int = 1024) -> torch.Tensor:
    """Per-sample cross-entropy ``(N_s,)`` of the source under the trained source network (eval mode)."""
    trainer.features.eval(), trainer.source_head.eval()
    chunks = list(torch.arange(len(source)).split(batch))
    out = []
    with torch.no_grad():
        for idx, x in zip(chunks, source.batches(chunks)):
            y = source.y[idx.to(source.y.device)].to(trainer.device)
            out.append(F.cross_entropy(trainer.source_head(trainer.features(x.to(trainer.device))), y,
                                       reduction="none").cpu())
    return torch.cat(out)


def _trainer(problem: Problem, cfg: SoseletoConfig, *, model: str, seed: int, device,
             workers: int = 2) -> tuple[Soseleto, dict]:
    """The network and SOSELETO state, and the sets as normalised tensors (statistics of source +
    target; of a streamed source, those of at most 2,048 of its images, all of them when it has no more)."""
    src = problem.source
    src_x = src.x if src.x is not None else sample(src.paths, mode=src.files.mode, size=src.files.size, seed=seed)
    mean, std = channel_stats(torch.cat([src_x, problem.target.x]))
    tensors: dict = {"stats": (mean, std)}
    for name in ("source", "target", "test"):
        s = getattr(problem, name)
        if s is not None and s.x is None:
            tensors[name] = StreamedImages(s.paths, s.y, mean=mean, std=std, size=s.files.size, mode=s.files.mode,
                                           workers=workers)
        elif s is not None:
            tensors[name] = Labeled(to_float(s.x, mean=mean, std=std), s.y)
    classes = [problem.n_source_classes] + ([] if cfg.shared_classifier else [problem.n_target_classes])
    features, heads = build(model, problem.source.shape, classes, seed=seed)
    trainer = Soseleto(features, heads[0], None if cfg.shared_classifier else heads[1],
                       n_source=len(problem.source), n_target=len(problem.target), cfg=cfg, device=device)
    return trainer, tensors


def _detection(weights: pd.DataFrame, source: ImageSet, true_labels: np.ndarray, threshold: float) -> dict:
    """Score alpha as a detector of the mislabeled source samples; adds true_label and suspect to ``weights``."""
    mislabeled = true_labels[weights["position"].to_numpy()] != weights["label"].to_numpy()
    d = detection_metrics(weights["alpha"].to_numpy(), mislabeled, threshold=threshold)
    weights["true_label"], weights["suspect"] = true_labels[weights["position"].to_numpy()], weights["alpha"] < threshold
    log.info("mislabeled source samples: %d; alpha < %g flags %d: precision %.3f, recall %.3f; AUROC %.3f",
             d["n_noisy"], threshold, d["n_flagged"], d["precision"], d["recall"], d["auroc"])
    return d


def _write(out: Path, trainer: Soseleto, problem: Problem, weights: pd.DataFrame, metrics: dict, settings: dict,
           stats: tuple, *, device: str, resume: Path) -> None:
    """Write the three outputs (and the provenance sidecar) into a staging folder, then move them into
    ``out`` together: a full disk or any other failure leaves none of them, and the resume file."""
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    names = ("weights.csv", "weights.csv.provenance.json", "model.pt", "metrics.json")
    try:
        _stage(staging, trainer, problem, weights, metrics, settings, stats, device=device)
        for name in names:
            os.replace(staging / name, out / name)
    except OSError as err:
        if no_space(err):
            raise OSError(err.errno, f"no space left on the device while writing the outputs into {str(out)!r} "
                          f"({err.strerror or err}); none of them was written. The trained state stays in {str(resume)!r}: run the "
                          "same command again once there is space and it only writes them") from err
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("test accuracy %s; wrote %s", percent(metrics["test_accuracy"]),
             ", ".join(str(out / f) for f in ("weights.csv", "model.pt", "metrics.json")))


def _rehearse(out: Path, trainer: Soseleto, problem: Problem, settings: dict, stats: tuple, *, device: str) -> None:
    """Write the outputs of the untrained state into a staging folder and remove them, before the first
    epoch: whatever would make the final write fail (a path that is not UTF-8 text, a value that is
    not plain, no space even for them, a folder that cannot be written) fails now, with nothing trained."""
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    weights = weights_table(problem.source, trainer.alpha.detach().cpu())
    try:
        _stage(staging, trainer, problem, weights, {"warnings": list(problem.warnings)}, settings, stats, device=device)
    except OSError as err:
        if no_space(err):
            raise OSError(err.errno, f"no space left on the device for the outputs in {str(out)!r} "
                          f"({err.strerror or err}); nothing was trained: free some space and run the same command "
                          "again") from err
        raise ValueError(f"--out {str(out)!r}: the outputs cannot be written there ({err.strerror or err}); nothing "
                         "was trained") from err
    except (ValueError, TypeError) as err:
        raise ValueError(f"--out {str(out)!r}: the outputs of this run could not be written ({err}); nothing was "
                         "trained") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(staging: Path, trainer: Soseleto, problem: Problem, weights: pd.DataFrame, metrics: dict, settings: dict,
           stats: tuple, *, device: str) -> None:
    """``weights.csv`` (+ its provenance), ``model.pt`` and ``metrics.json`` in ``staging``."""
    prov = json.loads(json.dumps(provenance(settings, device=device), default=str))  # plain values only
    write_csv(weights.drop(columns="position"), staging / "weights.csv", prov=prov)
    save_checkpoint({
        "features": trainer.features.state_dict(), "source_head": trainer.source_head.state_dict(),
        "target_head": None if trainer.shared else trainer.target_head.state_dict(),
        "in_shape": list(problem.source.shape), "n_source_classes": problem.n_source_classes,
        "n_target_classes": problem.n_target_classes, "mean": stats[0], "std": stats[1], "provenance": prov,
        **fit_model.preprocessing(problem, shared=trainer.shared),
    }, staging / "model.pt", config=settings)
    write_json(metrics, staging / "metrics.json", prov=prov)


def weights_table(source: ImageSet, alpha: torch.Tensor, loss: torch.Tensor | None = None) -> pd.DataFrame:
    """One row per source sample, ordered by ``rank`` (1 = the most suspect): ``index, label, alpha,
    final_loss, rank`` (+ ``path`` for an ImageFolder) and ``position`` (row in ``source``).

    Rank follows alpha, lowest first; samples of equal alpha (many end at the clip floor) are
    ordered by ``final_loss`` (``(N_s,)``, the per-sample loss under the trained network),
    highest first, then by position.
    """
    loss = torch.zeros_like(alpha) if loss is None else loss
    order = np.lexsort((-loss.numpy().astype(np.float64), alpha.numpy().astype(np.float64)))
    df = pd.DataFrame({"index": source.index.numpy(), "label": source.original_label.numpy(),
                       "alpha": alpha.numpy(), "final_loss": loss.numpy()})
    if source.paths:
        df["path"] = source.paths
    df["position"] = np.arange(len(df))
    df = df.iloc[order].reset_index(drop=True)
    df.insert(4, "rank", np.arange(1, len(df) + 1))
    return df


def read_true_labels(path: str | os.PathLike, source: ImageSet) -> np.ndarray:
    """The true label ``(N_s,)`` of each sample of ``source`` from ``path``: ``.npy`` (a 1-D
    integer array) or ``.npz`` (its array ``y``), one label per sample of the source as given
    (before ``:CLASSES``), in that set's label numbering. Raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--true-labels {str(path)!r}: no such file")
    try:
        y = validate.load_labels_file(path, str(path))
    except ValueError as err:
        raise ValueError(f"--true-labels: {err} (expected a .npy array or an .npz with an array 'y')") from None
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"--true-labels {str(path)!r}: expected a 1-D integer array, got {y.dtype} of shape {y.shape}")
    y = validate.labels(y, f"--true-labels {path}")
    n = source.n_rows if source.n_rows is not None else len(source)
    if len(y) != n:
        raise ValueError(f"--true-labels {str(path)!r} has {len(y)} labels but the source {source.spec.text!r} has "
                         f"{n} samples (one true label per source sample, before :CLASSES)")
    return y[source.index.numpy()]


def load_fitted(path: str | os.PathLike, *, device: str = "cpu") -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Rebuild ``(features, target head, saved state)`` from a ``model.pt``; inputs must be
    prepared as the training images were (the saved ``preprocess``, ``mean``/``std``), which
    :func:`soseleto.load` does.

    The file is read with ``weights_only=True`` (:func:`soseleto.core.checkpoint.safe_load`): one
    that stores anything but tensors and plain values (e.g. a pickled function) is refused with a
    ``ValueError`` naming it, and none of its code runs."""
    state = safe_load(path, map_location=device)
    shape, model, k = check_model_state(state, os.fspath(path))
    head_state = state["source_head"] if state["target_head"] is None else state["target_head"]
    try:
        with torch.device("meta"):  # the network's shapes, nothing allocated: they must be the file's
            meta, dim = build_features(model, shape)
            check_shapes(meta.state_dict(), state["features"], "features", path)
            check_shapes(build_classifier(dim, k).state_dict(), head_state, "the head", path)
        features, dim = build_features(model, shape)
        features.load_state_dict(state["features"])
        head = build_classifier(dim, k)
        head.load_state_dict(head_state)
    except (RuntimeError, TypeError) as err:  # e.g. an image smaller than the network's kernels
        raise ValueError(f"{os.fspath(path)!r}: not a model.pt written by soseleto fit: its network {model} for "
                         f"images {shape} cannot be built ({str(err).splitlines()[0] if str(err) else err!r})") from None
    return features.to(device).eval(), head.to(device).eval(), state


def percent(accuracy: float | None) -> str:
    """``0.9574999809265137 -> '95.75%'``; ``None`` (no test set) -> ``'-'``."""
    return "-" if accuracy is None else f"{accuracy:.2%}"
