"""Label-error detection by cleanlab on out-of-fold probabilities (:mod:`soseleto.experiments.detection`)."""

import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.config import DataConfig, NoisySplitConfig
from soseleto.core.checkpoint import safe_load
from soseleto.core.loop import Labeled
from soseleto.core.models import build_classifier, build_features
from soseleto.core.stop import Stopped
from soseleto.data import images, sets
from soseleto.data.noise import confusion_matrix, corrupt_labels
from soseleto.experiments import noisy
from soseleto.experiments.detection import cleanlab_scores, out_of_fold_probs, run_cleanlab
from soseleto.metrics import detection_metrics
from soseleto.report.label_errors import run_metrics

from builders import plain_config

DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=160, generated_test=60)


def test_cleanlab_flags_flipped_labels_from_good_probabilities():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), y_true] = 0.9
    noisy_ = rng.random(300) < 0.2
    labels = np.where(noisy_, (y_true + 1) % 3, y_true)
    quality, mask = cleanlab_scores(labels, probs)
    np.testing.assert_allclose(quality, probs[np.arange(300), labels])  # self-confidence
    m = detection_metrics(quality, noisy_, flagged=mask)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["auroc"] == 1.0
    with pytest.raises(ValueError, match="must be"):
        cleanlab_scores(labels[:10], probs)


def _source():
    x, y = sets.generated("mnist", "train", 120, seed=0)
    noisy_y = corrupt_labels(y, confusion_matrix(10, 0.3, seed=0), seed=1)
    return Labeled(images.to_float(x), noisy_y)


def _make(seed):
    from soseleto.core.rng import seeded

    with seeded(seed):
        f, d = build_features("mlp", (1, 28, 28), hidden=16, depth=1)
        return f, build_classifier(d, 10)


CFG = plain_config(lr_p=0.05, momentum=0.9, batch=16, epochs=2)


def test_out_of_fold_probs_never_see_the_sample():
    source = _source()
    seen = []

    def make(seed):
        seen.append(seed)
        return _make(seed)

    probs = out_of_fold_probs(make, source, CFG, folds=2, seed=0)
    assert probs.shape == (120, 10) and seen == [0, 1]  # one fresh network per fold, seeded seed * 1000 + fold
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    again = out_of_fold_probs(make, source, CFG, folds=2, seed=0)
    np.testing.assert_array_equal(probs, again)
    with pytest.raises(ValueError, match="folds"):
        out_of_fold_probs(make, source, CFG, folds=1, seed=0)
    # fold k's network never saw fold k: new images for fold 0's held-out samples train the same
    # network for fold 0 (only fold 1's network changes)
    from sklearn.model_selection import StratifiedKFold

    from soseleto.core.evaluate import predict_proba

    held = next(StratifiedKFold(n_splits=2, shuffle=True, random_state=0).split(np.zeros(120), source.y.numpy()))[1]
    nets = []
    out_of_fold_probs(lambda seed: nets.append(_make(seed)) or nets[-1], source, CFG, folds=2, seed=0)
    x = source.x.clone()
    x[held] = torch.rand(len(held), *x.shape[1:])
    other = []
    changed = out_of_fold_probs(lambda seed: other.append(_make(seed)) or other[-1], Labeled(x, source.y), CFG,
                                folds=2, seed=0)
    for a, b in zip(nets[0][0].parameters(), other[0][0].parameters()):
        assert torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(nets[1][0].parameters(), other[1][0].parameters()))
    np.testing.assert_allclose(changed[held], predict_proba(*other[0], x[held]).double().numpy())
    np.testing.assert_allclose(probs[held], predict_proba(*nets[0], source.x[held]).double().numpy())


def test_out_of_fold_probs_resume_per_fold(tmp_path):
    source = _source()
    full = out_of_fold_probs(_make, source, CFG, folds=2, seed=1)
    ck = str(tmp_path / "scores.csv.resume")
    first = out_of_fold_probs(_make, source, CFG, folds=2, seed=1, checkpoint=ck, identity={"run": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv.resume.fold0", "scores.csv.resume.fold1"]
    np.testing.assert_array_equal(first, full)
    np.testing.assert_array_equal(out_of_fold_probs(_make, source, CFG, folds=2, seed=1, checkpoint=ck,
                                                    identity={"run": "x"}), full)  # finished folds are read back
    with pytest.raises(ValueError, match="different config"):
        out_of_fold_probs(_make, source, CFG, folds=2, seed=1, checkpoint=ck, identity={"run": "y"})


class _SigtermAt:
    """Builds the folds' networks; sends SIGTERM from inside the forward pass of the ``at``-th
    training batch of the second fold, as a time limit would."""

    def __init__(self, at):
        self.at, self.seen = at, 0

    def __call__(self, model_seed):
        features, head = _make(model_seed)
        if model_seed % 1000 == 1:
            features.register_forward_pre_hook(self.hook)
        return features, head

    def hook(self, module, inputs):
        if module.training:
            self.seen += 1
            if self.seen == self.at:
                os.kill(os.getpid(), signal.SIGTERM)


def test_a_fold_stopped_by_sigterm_resumes_to_the_same_probabilities(tmp_path):
    source = _source()
    full = out_of_fold_probs(_make, source, CFG, folds=2, seed=1)
    ck = str(tmp_path / "scores.csv.resume")
    with pytest.raises(Stopped, match=r"cleanlab fold 2/2: stopped by SIGTERM at epoch \d step \d; state saved to "
                                      r".*scores\.csv\.resume\.fold1, rerun to resume") as err:
        out_of_fold_probs(_SigtermAt(3), source, CFG, folds=2, seed=1, checkpoint=ck, identity={"run": "x"})
    assert err.value.code == 143
    assert safe_load(ck + ".fold1")["position"] is not None  # stopped inside an epoch
    np.testing.assert_array_equal(out_of_fold_probs(_make, source, CFG, folds=2, seed=1, checkpoint=ck,
                                                    identity={"run": "x"}), full)


def test_cleanlab_job_on_generated_data(tmp_path):
    split_cfg = NoisySplitConfig(dataset="cifar10", n_target=50)
    split = {"split": str(tmp_path / "split.csv"), "confusion": str(tmp_path / "c.csv"), "info": str(tmp_path / "s.json")}
    noisy.write_split(split_cfg, DATA, noise=0.4, outputs=split)
    out = tmp_path / "cleanlab" / "scores.csv"
    baseline = plain_config(lr_p=0.02, momentum=0.9, batch=50, epochs=1)
    table = run_cleanlab(baseline, folds=2, split_cfg=split_cfg, model="cifar_quick", data=DATA, noise=0.4, seed=0,
                         device="cpu", split_csv=split["split"], scores_csv=str(out))
    saved = pd.read_csv(out)
    assert list(saved.columns) == ["index", "label", "true_label", "noisy", "score", "flagged"] and len(saved) == 110
    assert saved.score.between(0, 1).all() and saved.flagged.dtype == bool
    pd.testing.assert_frame_equal(saved, table)
    assert (tmp_path / "cleanlab" / "scores.csv.provenance.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv", "scores.csv.provenance.json"]  # no fold files
    m = run_metrics(saved, "cleanlab")
    assert m["n_noisy"] == saved.noisy.sum() and 0 <= m["auroc"] <= 1
