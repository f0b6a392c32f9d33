"""The Table 2 protocol (section 4.3) and Appendix C: transfer from ``source`` classes of one set to
``target`` classes of another (SVHN 0-4 -> MNIST 5-9 in the paper), any labelled image sets.

Data (index files, written before any training job):

* source: the images of the source set whose label is in ``source.classes``, labels renumbered
  ``0..K_s-1`` in that order;
* target: ``n_target`` class-balanced images of ``target.classes`` from the target set's training
  images, drawn per seed, labels renumbered ``0..K_t-1``;
* test: the target set's test images of those classes, or, for a set without a test split (a
  file), ``test_per_class`` images of each (the same for every run, and never in the source when
  the source is the same file), or without it every other image of those classes;
* pool (two-stage SOSELETO only): the remaining training images of the target classes (of a file:
  besides the test images), whose labels are never used for training (only to report how good
  the pseudo-labels were).

Every image is made the target's channels (gray for MNIST) and ``image_size`` square. Each set is
standardised with statistics of images a method may use: the source with its own mean/std, every
target-side set with the mean/std of the ``n_target`` labelled target images.

Methods (one job per ``(n_target, method, seed)``): ``target_only``, ``fine_tuning``
(``pretrain`` on the source, then every layer trained on the target with a fresh classifier),
``soseleto`` (transfer mode: shared features, separate classifiers), ``soseleto_frozen`` (the
same with ``lr_alpha = 0``: what the reweighting adds), ``soseleto_theta`` (not the paper: the
target gradient also steps the features) and ``two_stage`` (the
``soseleto`` run's target network labels the pool, which becomes the noisy source of a
noisy-label-mode run with the same clean target). Every run on the target records the test
accuracy after every epoch.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from soseleto.config import DataConfig, PlainConfig, SideConfig, SoseletoConfig
from soseleto.config import methods as registry
from soseleto.core.checkpoint import identity, load_checkpoint, publish, resume_path
from soseleto.core.device import resolve_device
from soseleto.core.evaluate import accuracy, predict
from soseleto.core.loop import Labeled, RunResult, train
from soseleto.core.models import build
from soseleto.core.soseleto import Soseleto
from soseleto.data import images, sets
from soseleto.io import provenance, write_csv, write_json
from soseleto.methods.plain import train_plain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """What every job of a transfer task reads besides its method's settings."""

    source: SideConfig
    target: SideConfig
    image_size: int
    model: str
    weight_init: str = "pytorch"  # soseleto.core.models.build


# -- index files -----------------------------------------------------------------------------------
TEST_SEED = 0  # draws the test images held out of a file target (the same for every run)


def file_test_rows(y: torch.Tensor, classes, test_per_class: int) -> torch.Tensor:
    """The rows ``(M,)`` of a file target held out as its test set: ``test_per_class`` of each class."""
    return images.class_balanced_indices(y, test_per_class, seed=TEST_SEED, classes=list(classes))


def write_source_split(side: SideConfig, data: DataConfig, out_csv: str, *, target: SideConfig | None = None,
                       test_per_class: int | None = None) -> pd.DataFrame:
    """The source index file: ``index`` (row of the source set), ``label`` (its original label). A
    source that is the ``target``'s own file never holds the target's test images (``test_per_class``)."""
    _, y = sets.load_labelled(side.dataset, "train", data)
    idx = _in_classes(y, side.classes)
    if target is not None and test_per_class and target.dataset == side.dataset and not sets.has_test_split(
            side.dataset):
        idx = idx[~torch.isin(idx, file_test_rows(y, target.classes, test_per_class))]
    df = pd.DataFrame({"index": idx.numpy(), "label": y[idx].numpy()})
    _log_and_write("source", df, out_csv, provenance({"side": side, "data": data}, test_per_class=test_per_class))
    return df


def write_target_split(side: SideConfig, data: DataConfig, *, n_target: int, seed: int, outputs: dict[str, str],
                       test_per_class: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The target and test index files (``index``, ``label``, ``target_label``) of one (n_target, seed).

    The draw for ``n_target = 20`` with a seed is a subset of the draw for 25 with the same seed
    (the same per-class permutation, cut shorter), which pairs the two columns of Table 2. A file
    (no test split) holds out ``test_per_class`` images per class as the test set (:func:`file_test_rows`)
    and draws the target from the others; without ``test_per_class`` the test set is every image of
    the target classes that is not in the target.
    """
    classes = list(side.classes)
    if n_target % len(classes):
        raise ValueError(f"n_target={n_target} is not a multiple of the {len(classes)} target classes")
    _, y = sets.load_labelled(side.dataset, "train", data)
    held_out = None
    if test_per_class and not sets.has_test_split(side.dataset):
        held_out = file_test_rows(y, classes, test_per_class)
    candidates = torch.arange(len(y)) if held_out is None else _in_classes(y, classes)
    if held_out is not None:
        candidates = candidates[~torch.isin(candidates, held_out)]
    target_idx = candidates[images.class_balanced_indices(y[candidates], n_target // len(classes), seed=seed,
                                                          classes=classes)]
    if sets.has_test_split(side.dataset):
        _, y_test = sets.load_labelled(side.dataset, "test", data)
        test_idx = _in_classes(y_test, classes)
    elif held_out is not None:
        y_test, test_idx = y, held_out
    else:  # a file: the other images of the target classes
        y_test, test_idx = y, _in_classes(y, classes)
        test_idx = test_idx[~torch.isin(test_idx, target_idx)]
    target, test = _indexed(y, target_idx, classes), _indexed(y_test, test_idx, classes)
    prov = provenance({"side": side, "data": data}, n_target=n_target, seed=seed, test_per_class=test_per_class)
    _log_and_write("target", target, outputs["target"], prov)
    _log_and_write("test", test, outputs["test"], prov)
    return target, test


def _log_and_write(kind: str, df: pd.DataFrame, out_csv: str, prov: dict) -> None:
    log.info("%s split: %d images, per class %s", kind, len(df), df["label"].value_counts().sort_index().to_dict())
    write_csv(df, out_csv, prov=prov)


def _in_classes(y: torch.Tensor, classes) -> torch.Tensor:
    """Indices ``(M,)`` of the labels in ``classes``, ascending."""
    return torch.nonzero(torch.isin(y, torch.as_tensor(list(classes)))).flatten()


def _indexed(y: torch.Tensor, idx: torch.Tensor, classes: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"index": idx.numpy(), "label": y[idx].numpy(),
                         "target_label": images.remap_labels(y[idx], classes).numpy()})


# -- sets ------------------------------------------------------------------------------------------
@dataclass
class TransferSets:
    source: Labeled | None  # standardised (n_s, C, S, S), labels 0..K_s-1
    source_index: np.ndarray | None  # (n_s,) row of each source image in the source set
    source_label: np.ndarray | None  # (n_s,) its original label
    target: Labeled | None  # (n_t, C, S, S), labels 0..K_t-1
    target_index: np.ndarray | None  # (n_t,) rows in the target set's training images
    test: Labeled | None  # the test images of the target classes
    test_index: np.ndarray | None  # their rows (in the target set's own test split, if it has one)
    stats: tuple[torch.Tensor, torch.Tensor] | None  # target mean/std, applied to every target-side set
    channels: int  # of every image: the target set's


def prepare(task: Task, data: DataConfig, inputs: dict[str, str]) -> TransferSets:
    """Load the images named by the index files ``inputs`` (``source``; ``target`` with ``test``)
    and standardise them (see the module docstring)."""
    loaded: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def load(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:  # source and target may be one file
        if (dataset, split) not in loaded:
            loaded[dataset, split] = sets.load_labelled(dataset, split, data)
        return loaded[dataset, split]

    target = test = stats = t_index = e_index = None
    x_t, y_t = load(task.target.dataset, "train")
    channels, size = x_t.shape[1], task.image_size
    if "target" in inputs:
        tsplit, esplit = pd.read_csv(inputs["target"]), pd.read_csv(inputs["test"])
        xt = _conform(x_t[_rows(tsplit["index"], y_t, tsplit.label, inputs["target"])], channels, size)
        stats = images.channel_stats(xt)
        x_e, y_e = load(task.target.dataset, "test" if sets.has_test_split(task.target.dataset) else "train")
        xe = _conform(x_e[_rows(esplit["index"], y_e, esplit.label, inputs["test"])], channels, size)
        target = Labeled(images.to_float(xt, mean=stats[0], std=stats[1]), torch.tensor(tsplit.target_label.to_numpy()))
        test = Labeled(images.to_float(xe, mean=stats[0], std=stats[1]), torch.tensor(esplit.target_label.to_numpy()))
        t_index, e_index = tsplit["index"].to_numpy(), esplit["index"].to_numpy()
    source = s_index = s_label = None
    if "source" in inputs:
        ssplit = pd.read_csv(inputs["source"])
        x_s, y_s = load(task.source.dataset, "train")
        xs = _conform(x_s[_rows(ssplit["index"], y_s, ssplit.label, inputs["source"])], channels, size)
        mean, std = images.channel_stats(xs)
        labels = images.remap_labels(torch.tensor(ssplit.label.to_numpy()), list(task.source.classes))
        source = Labeled(images.to_float(xs, mean=mean, std=std), labels)
        s_index, s_label = ssplit["index"].to_numpy(), ssplit.label.to_numpy()
    return TransferSets(source, s_index, s_label, target, t_index, test, e_index, stats, channels)


def unlabelled_pool(task: Task, data: DataConfig, sets_: TransferSets) -> tuple[Labeled, np.ndarray]:
    """The target classes' training images outside the target set (and, for a file, outside the
    test set), standardised like the target.

    Returns the pool (its labels are the *true* renumbered labels, for reporting only) and its
    rows in the target set.
    """
    x, y = sets.load_labelled(task.target.dataset, "train", data)
    idx = _in_classes(y, task.target.classes)
    used = sets_.target_index if sets.has_test_split(task.target.dataset) else np.concatenate(
        [sets_.target_index, sets_.test_index])
    idx = idx[~torch.isin(idx, torch.tensor(used))]
    if not len(idx):
        raise ValueError(f"two-stage SOSELETO on {task.target.dataset!r}: no target-class image is left for the "
                         "unlabelled pool besides the labelled target and the test set (lower transfer.test_per_class)")
    xp = images.to_float(_conform(x[idx], sets_.channels, task.image_size), mean=sets_.stats[0], std=sets_.stats[1])
    return Labeled(xp, images.remap_labels(y[idx], list(task.target.classes))), idx.numpy()


def _conform(x: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """uint8 images made ``channels`` (gray by luminance, or gray repeated to RGB) and ``size`` square."""
    if tuple(x.shape[1:]) == (channels, size, size):
        return x
    if channels == 1:
        return images.to_gray_resized(x, (size, size))
    return images.resize(x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x, (size, size))


def _rows(index: pd.Series, y: torch.Tensor, labels: pd.Series, path: str) -> torch.Tensor:
    """Indices from an index file, checked against the loaded labels (a split written for other data is an error)."""
    idx = torch.tensor(index.to_numpy())
    if len(idx) and (int(idx.max()) >= len(y) or not np.array_equal(y[idx].numpy(), labels.to_numpy())):
        raise ValueError(f"index file {path!r} does not match the loaded data set (written for other data?); delete it")
    return idx


# -- runs -----------------------------------------------------------------------------------------
@dataclass
class TransferRun:
    """One transfer run: its method (an entry of :mod:`soseleto.config.methods`), settings, task,
    seed and where it reads and writes.

    ``init`` (fine-tuning and two-stage) holds the settings of the run it starts from, whose
    checkpoint is ``inputs['init']``; ``options``: the value of the method's ``options`` config
    entry (``soseleto_theta``: the weight of the target gradient on the features; ``two_stage``:
    ``two_stage_init``).
    """

    method: str
    settings: PlainConfig | SoseletoConfig
    task: Task
    data: DataConfig
    seed: int
    device: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    n_target: int | None = None
    init: PlainConfig | SoseletoConfig | None = None
    options: Any = None

    def identity(self, method: str | None = None, settings: Any = None, n_target: Any = "same") -> dict:
        """The checkpoint identity of this run, or of the run it starts from."""
        return identity(method or self.method, settings or self.settings, seed=self.seed, task=self.task,
                        data=self.data, n_target=self.n_target if n_target == "same" else n_target,
                        options=self.options if method is None else None)


def run_and_save(job: TransferRun) -> dict:
    """Run one job and write ``outputs['metrics']`` (JSON), ``outputs['checkpoint']`` and, for
    SOSELETO runs, ``outputs['alpha']`` (CSV). While training, the resumable state lives in
    ``<checkpoint>.resume``, so a killed job resumes."""
    runner = registry.get("transfer", job.method).runner()
    dev = resolve_device(job.device)
    data_sets = prepare(job.task, job.data, job.inputs)
    resume = resume_path(job.outputs["checkpoint"])
    log.info("%s n_target=%s seed=%d on %s: %s", job.method, job.n_target, job.seed, dev, job.settings)
    run, alpha, extra = runner(job, data_sets, dev, resume)
    metrics = {"method": job.method, "n_target": job.n_target, "seed": job.seed,
               "accuracy": run.history[-1].values.get("test_accuracy"),
               "accuracy_on": "source train" if job.method == "pretrain" else "test images of the target classes",
               "n_source": None if data_sets.source is None else len(data_sets.source),
               "n_test": None if data_sets.test is None else len(data_sets.test), **extra,
               "seconds_per_epoch": float(np.mean([h.seconds for h in run.history])),
               "history": [h.record() for h in run.history]}
    prov = provenance({"settings": job.settings, "init": job.init, "options": job.options, "task": job.task,
                       "data": job.data},
                      seed=job.seed, method=job.method, n_target=job.n_target, device=str(dev))
    if alpha is not None:
        write_csv(alpha, job.outputs["alpha"], prov=prov)
    write_json(metrics, job.outputs["metrics"], prov=prov)
    publish(resume, job.outputs["checkpoint"])
    log.info("%s n_target=%s seed=%d: accuracy %.4f", job.method, job.n_target, job.seed, metrics["accuracy"])
    return metrics


def _test_monitor(features, head, test: Labeled) -> dict[str, Callable[[], float]]:
    return {"test_accuracy": lambda: accuracy(features, head, test.x, test.y)}


def _shape(job: TransferRun, data_sets: TransferSets) -> tuple[int, int, int]:
    return (data_sets.channels, job.task.image_size, job.task.image_size)


def run_plain(job: TransferRun, data_sets: TransferSets, dev, resume: str):
    """``target_only`` (fresh network), ``fine_tuning`` (pre-trained features, fresh classifier) on
    the target; ``pretrain`` on the source (its 'accuracy' is on the source itself)."""
    on_source = job.method == "pretrain"
    classes = job.task.source.classes if on_source else job.task.target.classes
    features, (head,) = build(job.task.model, _shape(job, data_sets), [len(classes)], seed=job.seed,
                              weight_init=job.task.weight_init)
    if job.method == "fine_tuning":
        pre = load_checkpoint(job.inputs["init"], config=job.identity("pretrain", job.init, n_target=None))
        features.load_state_dict(pre["features"])
    data = data_sets.source if on_source else data_sets.target
    history = train_plain(features, head, data, job.settings, seed=job.seed, device=dev, checkpoint=resume,
                          identity=job.identity(), name=job.method,
                          monitors=None if on_source else _test_monitor(features, head, data_sets.test))
    return RunResult(history), None, {"accuracy": accuracy(features, head, data.x, data.y)} if on_source else {}


def run_soseleto(job: TransferRun, data_sets: TransferSets, dev, resume: str, cfg: SoseletoConfig | None = None):
    """SOSELETO in transfer mode with ``cfg`` (default: the job's settings); ``alpha`` rows:
    ``index``, ``label`` (the source label), ``alpha``."""
    n_s = len(np.unique(data_sets.source_label))
    features, (head_s, head_t) = build(job.task.model, _shape(job, data_sets), [n_s, len(job.task.target.classes)],
                                       seed=job.seed, weight_init=job.task.weight_init)
    trainer = Soseleto(features, head_s, head_t, n_source=len(data_sets.source), n_target=len(data_sets.target),
                       cfg=cfg or job.settings, device=dev)
    history = train(trainer, data_sets.source, data_sets.target, schedule=job.settings.schedule, seed=job.seed,
                    device=dev, checkpoint=resume, identity=job.identity(), name=job.method,
                    monitors=_test_monitor(features, head_t, data_sets.test))
    alpha = pd.DataFrame({"index": data_sets.source_index, "label": data_sets.source_label,
                          "alpha": trainer.alpha.cpu().numpy()})
    return RunResult(history), alpha, {}


def run_frozen(job: TransferRun, data_sets: TransferSets, dev, resume: str):
    """:func:`run_soseleto` with ``lr_alpha = 0``: what the reweighting itself adds."""
    return run_soseleto(job, data_sets, dev, resume, dataclasses.replace(job.settings, lr_alpha=0.0))


def run_theta(job: TransferRun, data_sets: TransferSets, dev, resume: str):
    """:func:`run_soseleto` with the target gradient also on the features, weighted by ``job.options``
    (``transfer.theta_target_weight``; not the paper)."""
    return run_soseleto(job, data_sets, dev, resume, dataclasses.replace(job.settings, target_on_features=job.options))


def run_two_stage(job: TransferRun, data_sets: TransferSets, dev, resume: str):
    """Stage 2: pseudo-label the pool with the stage-1 target network, then noisy-label SOSELETO."""
    pool, pool_index = unlabelled_pool(job.task, job.data, data_sets)
    k_t = len(job.task.target.classes)
    state = load_checkpoint(job.inputs["init"], config=job.identity("soseleto", job.init))
    f1, (h1,) = build(job.task.model, _shape(job, data_sets), [k_t], seed=job.seed)
    f1.load_state_dict(state["features"]), h1.load_state_dict(state["target_head"])
    pseudo = predict(f1.to(dev), h1.to(dev), pool.x).cpu()
    pseudo_acc = float((pseudo == pool.y).float().mean())
    log.info("stage 1 pseudo-labels %d pool images, %.4f of them correctly", len(pool), pseudo_acc)
    if job.options == "stage1":  # transfer.two_stage_init
        features, head = f1, h1
    else:
        features, (head,) = build(job.task.model, _shape(job, data_sets), [k_t], seed=job.seed,
                                  weight_init=job.task.weight_init)
    trainer = Soseleto(features, head, None, n_source=len(pool), n_target=len(data_sets.target), cfg=job.settings,
                       device=dev)
    history = train(trainer, Labeled(pool.x, pseudo), data_sets.target, schedule=job.settings.schedule,
                    seed=job.seed, device=dev, checkpoint=resume, identity=job.identity(), name=job.method,
                    monitors=_test_monitor(features, head, data_sets.test))
    a, right = trainer.alpha.cpu().numpy(), (pseudo == pool.y).numpy()
    alpha = pd.DataFrame({"index": pool_index, "pseudo_label": pseudo.numpy(), "true_label": pool.y.numpy(), "alpha": a})
    extra = {"n_pool": len(pool), "pseudo_label_accuracy": pseudo_acc,
             "mean_alpha_correct_pseudo": float(a[right].mean()) if right.any() else None,
             "mean_alpha_wrong_pseudo": float(a[~right].mean()) if (~right).any() else None}
    return RunResult(history), alpha, extra
