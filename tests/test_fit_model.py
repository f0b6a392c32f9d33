"""Which network a fit trains, and the warnings of a run that did not learn (:mod:`soseleto.experiments.fit_model`)."""

import math

import numpy as np
import pytest
import torch

from soseleto.core.loop import EpochStats
from soseleto.experiments import fit_model
from soseleto.experiments.fit import prepare


def _history(losses, alpha_mean=1.0, test_accuracy=None):
    values = {"alpha_mean": alpha_mean, **({} if test_accuracy is None else {"test_accuracy": test_accuracy})}
    return [EpochStats(i + 1, loss, 0.0, dict(values)) for i, loss in enumerate(losses)]


def _warn(history, test_y=None, **kw):
    return fit_model.learning_warnings(history, **{"n_source_classes": 10, "source_batch": 100, "n_source": 1000,
                                                   "loss_scale": "batch_mean", "test_y": test_y, **kw})


def test_source_loss_at_chance_level_is_a_warning():
    ln10 = math.log(10)
    assert _warn(_history([ln10, 0.95 * ln10])) and not _warn(_history([ln10, 0.85 * ln10]))
    # alphas falling to 0 lower the weighted loss without any learning: per unit of alpha it is still chance
    assert _warn(_history([0.5 * ln10], alpha_mean=0.5))
    # loss_scale dataset: each step's loss is a sum over the batch divided by n_source
    assert _warn(_history([ln10 * 100 / 1000]), loss_scale="dataset")
    assert not _warn(_history([0.5 * ln10 * 100 / 1000]), loss_scale="dataset")


def test_test_accuracy_at_chance_is_a_warning():
    y = torch.arange(400) % 4  # balanced: the constant guess scores 25%; 2 sd of 400 samples: 4.3 points
    low, high = _history([0.1], test_accuracy=0.29), _history([0.1], test_accuracy=0.30)
    (w,) = _warn(low, y)
    assert "the test accuracy 29.00% is at chance level" in w and "scores 25.00%" in w and "below 29.33%" in w
    assert _warn(high, y) == []
    skewed = torch.cat([torch.zeros(360), torch.ones(40)]).long()  # a constant guess of 0 scores 90%
    assert _warn(_history([0.1], test_accuracy=0.9), skewed)


def _problem(tmp_path, shape, *, channels=None):
    g = np.random.default_rng(0)
    size = (*shape, channels) if channels else shape
    for name, n in (("s", 20), ("t", 6)):
        np.savez(tmp_path / f"{name}.npz", x=g.integers(0, 255, (n, *size)).astype(np.uint8), y=np.arange(n) % 2)
    return prepare(str(tmp_path / "s.npz"), str(tmp_path / "t.npz"), str(tmp_path / "t.npz"), mode="noisy")


def test_auto_resizes_every_set_and_a_named_network_keeps_the_images(tmp_path):
    p = _problem(tmp_path, (8, 12), channels=3)
    assert fit_model.choose(p, "auto") == "cifar_quick" and p.model_size == (32, 48)
    assert {tuple(s.x.shape[1:]) for s in (p.source, p.target, p.test)} == {(3, 32, 48)}
    p = _problem(tmp_path, (8, 8))
    assert fit_model.choose(p, "mlp") == "mlp" and p.model_size is None and p.source.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="model lenet needs images of at least 16x16 pixels, but these are 8x8"):
        fit_model.choose(p, "lenet")
