"""The peer methods through the registry (:mod:`soseleto.config.methods`): their checks, and a tiny
noisy-label run of every peer that is finite, resumes exactly and refuses a foreign checkpoint."""

import math

import numpy as np
import pytest
import torch

from soseleto.config import PeerConfig, from_mapping
from soseleto.config import methods as registry
from soseleto.core.loop import Labeled
from soseleto.data import images, sets
from soseleto.data.noise import confusion_matrix, corrupt_labels

from builders import Killed, batch2d, dies_on_second_call, mlp, paired_config, run_peer


def test_peer_config_validation():
    assert from_mapping(PeerConfig, {"target_weight": 0.1}).target_weight == 0.1
    with pytest.raises(ValueError, match="target_weight"):
        PeerConfig(target_weight=1.5)
    with pytest.raises(ValueError, match="unknown config key"):
        from_mapping(PeerConfig, {"target_wieght": 0.1})
    with pytest.raises(ValueError, match="glc_noisy_epochs"):
        PeerConfig(glc_noisy_epochs=0)
    f, h = mlp()
    d = Labeled(*batch2d(8))
    with pytest.raises(ValueError, match="method 'mwn' is not a noisy method; known: .*'l2rw'"):
        run_peer("mwn", f, h, d, d, paired_config(), seed=0)
    with pytest.raises(ValueError, match="head has 3 outputs"):
        run_peer("glc", f, h, Labeled(d.x, d.y + 3), d, paired_config(), seed=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        run_peer("noise_layer", f, torch.nn.Identity(), d, d, paired_config(), seed=0)


def _noisy_problem(n=240, n_target=60, noise=0.4):
    x, y = sets.generated("mnist", "train", n + n_target, seed=0)
    x = images.to_float(x)
    noisy_y = corrupt_labels(y[:n], confusion_matrix(10, noise, seed=0), seed=1)
    return Labeled(x[:n], noisy_y), Labeled(x[n:], y[n:]), (noisy_y != y[:n]).numpy()


CFG = paired_config(lr_p=0.05, momentum=0.9, source_batch=32, target_batch=16, epochs=2)
OPTIONS = PeerConfig(glc_noisy_epochs=1, noise_lr_scale=10.0)
IDENTITY = {"test": "peers", "seed": 3}


@pytest.mark.parametrize("method", registry.names("noisy", rows=("peer",)))
def test_tiny_run_is_finite_and_resumes_exactly(method, tmp_path):
    source, target, _ = _noisy_problem()

    def run(**kw):
        f, h = mlp((1, 28, 28), k=10, hidden=16)
        res = run_peer(method, f, h, source, target, CFG, OPTIONS, seed=3, **kw)
        return res, list(f.parameters()) + list(h.parameters())

    full, p_full = run()
    assert len(full.history) == 2 and all(math.isfinite(s.loss_source) for s in full.history)
    # paired methods record the target loss; the union-set methods have none
    assert all((s.loss_target is None) == (method in ("glc", "noise_layer")) for s in full.history)
    assert all(torch.isfinite(p).all() for p in p_full)
    scored = registry.get("noisy", method).scores is not None  # the reweighting peers
    if scored:
        assert full.scores.shape == (len(source),) and np.isfinite(full.scores).all()
        assert abs(full.scores.mean() - 1.0) < 0.2  # each batch hands out |b| units of weight
        assert (full.extra["draws"] == 2).all()  # every sample drawn once per epoch
    else:
        assert full.scores is None
    for key in full.extra:
        assert np.isfinite(full.extra[key]).all()
    if method in ("glc", "noise_layer"):
        matrix = full.extra["corruption" if method == "glc" else "noise_matrix"]
        np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)

    ck = tmp_path / f"{method}.ckpt"
    die = dies_on_second_call()  # "killed" while evaluating epoch 2: the checkpoint holds epoch 1

    with pytest.raises(Killed):
        run(checkpoint=ck, identity=IDENTITY, monitors={"m": die})
    resumed, p_resumed = run(checkpoint=ck, identity=IDENTITY)
    assert [s.epoch for s in resumed.history] == [1, 2]
    assert [s.loss_source for s in resumed.history] == [s.loss_source for s in full.history]
    for a, b in zip(p_resumed, p_full):
        assert torch.equal(a, b)
    if scored:
        np.testing.assert_array_equal(resumed.scores, full.scores)
    for key in full.extra:
        np.testing.assert_array_equal(resumed.extra[key], full.extra[key])
    with pytest.raises(ValueError, match="different config"):
        run(checkpoint=ck, identity={**IDENTITY, "seed": 4})
