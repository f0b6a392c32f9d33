import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from soseleto import data
from soseleto.config import TrainerConfig, from_dict
from soseleto.models import build_classifier, build_features
from soseleto.noise import confusion_matrix, corrupt_labels
from soseleto.peers import METHODS, PeerConfig, joint_loss, train_peer
from soseleto.peers_correction import NoiseLayer, estimate_corruption, union_loss
from soseleto.peers_reweight import l2rw_weights
from soseleto.rng import seeded
from soseleto.trainer import Labeled


def _net(in_shape=(2,), k=3, hidden=8, seed=0):
    with seeded(seed):
        f, d = build_features("mlp", in_shape, hidden=hidden, depth=1)
        return f, build_classifier(d, k)


def _batch(n, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, k, (n,), generator=g)


# -- L2RW -----------------------------------------------------------------------------------------
def _lookahead_weights(features, head, xs, ys, xt, yt, lr):
    """Ren et al.'s Algorithm 1 as written: a differentiable look-ahead step with eps requiring
    grad, then d L_clean / d eps by double backprop."""
    model = nn.Sequential(features, head)
    params = dict(model.named_parameters())
    eps = torch.zeros(len(ys), requires_grad=True)
    l_f = (eps * F.cross_entropy(functional_call(model, params, (xs,)), ys, reduction="none")).sum()
    grads = torch.autograd.grad(l_f, list(params.values()), create_graph=True)
    ahead = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    l_g = F.cross_entropy(functional_call(model, ahead, (xt,)), yt)
    w = (-torch.autograd.grad(l_g, eps)[0]).clamp_min(0)
    return w / w.sum() if w.sum() > 0 else w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2rw_weights_match_double_backprop_lookahead(float64, seed):
    f, h = _net(seed=seed)
    xs, ys = _batch(16, seed=seed)
    xt, yt = _batch(8, seed=seed + 10)
    losses, w, _ = l2rw_weights(f, h, xs, ys, xt, yt)
    ref = _lookahead_weights(f, h, xs, ys, xt, yt, lr=0.1)
    assert ref.sum() > 0 and (ref == 0).any()  # a non-trivial case: some samples rejected
    torch.testing.assert_close(w, ref.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(losses, F.cross_entropy(h(f(xs)), ys, reduction="none"))


def test_l2rw_all_rejected_gives_zero_step(float64):
    # With a zero classifier p is uniform, so grad l_j . grad L_clean = (p - e_yj).(p - e_0) (h_j.h_t + 1)
    # = -(h_j.h_t + 1) / K < 0 for every source label y_j != 0 (ReLU features h >= 0): all rejected.
    f, h = _net()
    nn.init.zeros_(h.weight), nn.init.zeros_(h.bias)
    xs, _ = _batch(4, seed=3)
    source, target = Labeled(xs, torch.tensor([1, 2, 1, 2])), Labeled(*_batch(1, seed=4))
    target.y[:] = 0
    _, w, _ = l2rw_weights(f, h, source.x, source.y, target.x, target.y)
    assert torch.equal(w, torch.zeros(4))
    before = [p.clone() for p in list(f.parameters()) + list(h.parameters())]
    cfg = TrainerConfig(lr_p=0.1, source_batch=4, target_batch=1, epochs=1)
    res = train_peer("l2rw", f, h, source, target, cfg, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, list(f.parameters()) + list(h.parameters())))
    assert res.scores.tolist() == [0.0] * 4


# -- joint ----------------------------------------------------------------------------------------
def test_joint_step_is_sgd_on_the_weighted_sum(float64):
    xs, ys = _batch(6, seed=1)
    xt, yt = _batch(6, seed=2)
    w = 0.3
    f, h = _net()
    ref_f, ref_h = _net()
    params = list(ref_f.parameters()) + list(ref_h.parameters())
    ls = F.cross_entropy(ref_h(ref_f(xs)), ys)
    lt = F.cross_entropy(ref_h(ref_f(xt)), yt)
    assert torch.allclose(joint_loss(ls, lt, w), 0.7 * ls + 0.3 * lt)
    grads = torch.autograd.grad(joint_loss(ls, lt, w), params)
    cfg = TrainerConfig(lr_p=0.5, source_batch=6, target_batch=6, epochs=1)
    train_peer("joint", f, h, Labeled(xs, ys), Labeled(xt, yt), cfg, PeerConfig(target_weight=w), seed=0)
    for p, p0, g in zip(list(f.parameters()) + list(h.parameters()), params, grads):
        torch.testing.assert_close(p, p0 - 0.5 * g)


# -- GLC ------------------------------------------------------------------------------------------
def test_glc_corruption_estimate_by_hand():
    probs = torch.tensor([[0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.1, 0.7, 0.2], [0.0, 0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    c = estimate_corruption(probs, y, 3)
    expected = torch.tensor([[0.7, 0.3, 0.0], [0.05, 0.35, 0.6], [0.0, 0.0, 1.0]])  # class 2 unseen: identity
    torch.testing.assert_close(c, expected)


def test_corrected_loss_matches_manual(float64):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=g)
    y = torch.tensor([0, 2, 1, 1, 0])
    trusted = torch.tensor([True, False, False, True, False])
    c = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    p = logits.softmax(1)
    manual = torch.stack([
        -torch.log(p[j, y[j]]) if trusted[j] else -torch.log((p[j] @ c)[y[j]]) for j in range(5)
    ]).mean()
    torch.testing.assert_close(union_loss(logits, y, trusted, c.log()), manual)


# -- noise layer ----------------------------------------------------------------------------------
def test_noise_layer_is_p_times_q_with_stochastic_rows(float64):
    layer = NoiseLayer(4, init_diag=0.9)
    torch.testing.assert_close(layer.matrix().diagonal(), torch.full((4,), 0.9))
    with torch.no_grad():
        layer.logits.normal_(generator=torch.Generator().manual_seed(1))
    q = layer.matrix()
    torch.testing.assert_close(q.sum(1), torch.ones(4))
    assert (q > 0).all()
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(layer(logits).exp(), logits.softmax(1) @ q)


def test_noise_layer_learns_only_from_untrusted_samples(float64):
    layer = NoiseLayer(3)
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    union_loss(logits, y, torch.ones(4, dtype=torch.bool), layer.log_matrix()).backward()
    assert torch.equal(layer.logits.grad, torch.zeros(3, 3))


# -- config and interface -------------------------------------------------------------------------
def test_peer_config_validation():
    assert from_dict(PeerConfig, {"target_weight": 0.1}).target_weight == 0.1
    with pytest.raises(ValueError, match="target_weight"):
        PeerConfig(target_weight=1.5)
    with pytest.raises(ValueError, match="unknown config key"):
        from_dict(PeerConfig, {"target_wieght": 0.1})
    with pytest.raises(ValueError, match="glc_noisy_epochs"):
        PeerConfig(glc_noisy_epochs=0)
    f, h = _net()
    d = Labeled(*_batch(8))
    with pytest.raises(ValueError, match="method='mwn'"):
        train_peer("mwn", f, h, d, d, TrainerConfig(), seed=0)
    with pytest.raises(ValueError, match="head has 3 outputs"):
        train_peer("joint", f, h, Labeled(d.x, d.y + 3), d, TrainerConfig(), seed=0)


def _noisy_problem(n=240, n_target=60, noise=0.4):
    x, y = data.generated("mnist", "train", n + n_target, seed=0)
    x = data.to_float(x)
    noisy_y = corrupt_labels(y[:n], confusion_matrix(10, noise, seed=0), seed=1)
    return Labeled(x[:n], noisy_y), Labeled(x[n:], y[n:]), (noisy_y != y[:n]).numpy()


CFG = TrainerConfig(lr_p=0.05, momentum=0.9, source_batch=32, target_batch=16, epochs=2)
OPTIONS = PeerConfig(glc_noisy_epochs=1, noise_lr_scale=10.0)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_run_is_finite_and_resumes_exactly(method, tmp_path):
    source, target, _ = _noisy_problem()

    def run(**kw):
        f, h = _net((1, 28, 28), k=10, hidden=16)
        res = train_peer(method, f, h, source, target, CFG, OPTIONS, seed=3, **kw)
        return res, list(f.parameters()) + list(h.parameters())

    full, p_full = run()
    assert len(full.history) == 2 and all(math.isfinite(s.loss_source) for s in full.history)
    assert all(torch.isfinite(p).all() for p in p_full)
    if method == "l2rw":
        assert full.scores.shape == (len(source),) and np.isfinite(full.scores).all()
        assert abs(full.scores.mean() - 1.0) < 0.2  # each batch hands out |b| units of weight
    else:
        assert full.scores is None
    for key in full.extra:
        assert np.isfinite(full.extra[key]).all()
    if method in ("glc", "noise_layer"):
        matrix = full.extra["corruption" if method == "glc" else "noise_matrix"]
        np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)

    ck = tmp_path / f"{method}.ckpt"
    run(checkpoint=ck, epochs=1)  # "killed" after epoch 1
    resumed, p_resumed = run(checkpoint=ck)
    assert [s.epoch for s in resumed.history] == [2]
    for a, b in zip(p_resumed, p_full):
        assert torch.equal(a, b)
    if method == "l2rw":
        np.testing.assert_array_equal(resumed.scores, full.scores)
    with pytest.raises(ValueError, match="different config"):
        f, h = _net((1, 28, 28), k=10, hidden=16)
        train_peer(method, f, h, source, target, CFG, OPTIONS, seed=4, checkpoint=ck)
