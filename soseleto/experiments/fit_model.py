"""``soseleto fit``: the checked inputs of a fit (:class:`Problem`), which network it trains and on
what image size, what ``model.pt`` keeps of the preprocessing for ``soseleto predict``, and the
warnings of a run that did not learn."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from soseleto.core.models import auto_model, check_fits
from soseleto.data.user import ImageSet, harmonise

if TYPE_CHECKING:
    from soseleto.core.loop import EpochStats

log = logging.getLogger(__name__)

@dataclass
class Problem:
    """The checked inputs of one fit: sets of one image shape, labels within their classifier."""

    source: ImageSet
    target: ImageSet
    test: ImageSet | None
    n_source_classes: int
    n_target_classes: int
    warnings: list[str] = field(default_factory=list)  # logged, and listed in metrics.json
    gray: bool = False  # RGB images were made gray (--gray)
    size: tuple[int, int] | None = None  # every image was resized to (H, W) (--size)
    image_shape: tuple[int, int, int] | None = None  # (C, H, W) before model_size, set by fit_model.choose
    model_size: tuple[int, int] | None = None  # then resized for the network (model auto: fit_model.choose)


# a source loss within this fraction of ln K never left chance level
CHANCE_LOSS = 0.9
# a test accuracy within this many binomial standard deviations of the constant guess is at chance
CHANCE_SD = 2.0


def choose(problem: Problem, model: str) -> str:
    """The network to train on ``problem``'s images; ``auto`` also resizes them (in place).

    ``auto``: :func:`soseleto.core.models.auto_model` (LeNet for gray images, CIFAR-10 Quick for
    colour ones, images under the network's native side scaled up to it); the new size is kept in
    ``problem.model_size``. A named network must take the images as they are: otherwise
    ``ValueError`` names both (:func:`soseleto.core.models.check_fits`).
    """
    shape = problem.image_shape = tuple(problem.source.shape)
    if model != "auto":
        check_fits(model, shape)
        return model
    name, size = auto_model(shape)
    if size is not None:
        if problem.source.x is None:
            raise ValueError(f"model auto would scale the {shape[1]}x{shape[2]} images of the streamed source up to "
                             f"{size[0]}x{size[1]} for {name}; give --size {size[0]}x{size[1]} to decode them at that "
                             "size, or choose --model")
        harmonise([s for s in (problem.source, problem.target, problem.test) if s is not None], size=size)
        problem.model_size = size
        log.info("fit: model auto: %s, with the %dx%d images scaled up to %dx%d (the size it is made for)",
                 name, shape[1], shape[2], *size)
    return name


def preprocessing(problem: Problem, *, shared: bool) -> dict:
    """What ``model.pt`` keeps to prepare new images as the training images were: ``gray``
    (luminance of RGB images), ``size`` (the first resize, ``--size``), ``shape`` (C, H, W) of the
    images then, ``model_size`` (the resize of ``auto`` after that); and, for the classifier that
    predicts (the source's in noisy mode, ``shared``; the target's in transfer mode), the label
    as given in its set of each class (``labels``) and an ImageFolder's class names (``class_names``)."""
    labelled = problem.source if shared else problem.target
    pre = {"gray": problem.gray, "size": _pair(problem.size), "shape": list(problem.image_shape),
           "model_size": _pair(problem.model_size)}
    return {"preprocess": pre, "labels": class_labels(labelled), "class_names": labelled.class_names}


def class_labels(s: ImageSet) -> list[int]:
    """The label as given in the set (before ``:CLASSES``) of each class ``0..K-1`` of ``s``."""
    return list(s.spec.classes) if s.spec.classes is not None else list(range(s.n_classes))


def _pair(size) -> list[int] | None:
    return None if size is None else [int(size[0]), int(size[1])]


def learning_warnings(history: list[EpochStats], *, n_source_classes: int, source_batch: int, n_source: int,
                      loss_scale: str, test_y: torch.Tensor | None) -> list[str]:
    """Warnings of a run that did not learn: its source loss never left chance level, or its test
    accuracy is at chance.

    The source loss of an epoch is its alpha-weighted mean, divided by the mean alpha (so that
    alphas falling to 0 do not pass for learning) and brought to a per-sample mean when
    ``loss_scale`` is ``dataset``; it never left chance level when it stayed above
    :data:`CHANCE_LOSS` ``* ln K`` in every epoch. Chance accuracy is that of always guessing the
    test set's most frequent class, ``p``; the accuracy is at chance when it is below
    ``p + CHANCE_SD * sqrt(p (1 - p) / n)`` (``n`` test samples).
    """
    out = []
    chance_loss = math.log(n_source_classes)
    per_sample = n_source / source_batch if loss_scale == "dataset" else 1.0
    losses = [h.loss_source * per_sample / h.values["alpha_mean"] for h in history if h.values.get("alpha_mean", 0) > 0]
    if losses and min(losses) > CHANCE_LOSS * chance_loss:
        out.append(f"the source loss never left chance level: its lowest epoch mean (per unit of alpha) was "
                   f"{min(losses):.3f}, ln {n_source_classes} = {chance_loss:.3f}; the network did not learn (try "
                   "more --epochs, another --lr or --model)")
    acc = history[-1].values.get("test_accuracy") if history else None
    if acc is not None and test_y is not None and len(test_y):
        p = float(torch.bincount(test_y).max()) / len(test_y)
        bar = p + CHANCE_SD * math.sqrt(p * (1 - p) / len(test_y))
        if acc < bar:
            out.append(f"the test accuracy {acc:.2%} is at chance level: always guessing the most frequent test "
                       f"class scores {p:.2%}, and {len(test_y)} test samples cannot tell apart accuracies below "
                       f"{bar:.2%} from it")
    return out


def announce(warnings: list[str]) -> None:
    """Log each warning loudly (the last lines of a fit's log)."""
    for w in warnings:
        log.warning("fit: DID NOT LEARN: %s", w)
