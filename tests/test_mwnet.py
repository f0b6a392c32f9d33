"""Meta-Weight-Net (:mod:`soseleto.methods.mwnet`): psi's first-order gradient against the
differentiable look-ahead, one step, BatchNorm statistics, resume, and detection of flipped labels."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.func import functional_call

from soseleto.config import PeerConfig
from soseleto.core.loop import Labeled, Schedule, train
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded
from soseleto.methods.mwnet import MWNet, meta_gradient, sample_weights, weight_net

from builders import Killed, batch2d, dies_on_second_call, mlp, paired_config


def _second_order_psi_grad(features, head, vnet, xs, ys, xt, yt, *, lr, normalize):
    """Shu et al.'s step as written: a differentiable look-ahead theta_hat(psi) (create_graph) and
    d L_meta(theta_hat) / d psi by double backprop."""
    model = nn.Sequential(features, head)
    params = dict(model.named_parameters())
    losses = F.cross_entropy(functional_call(model, params, (xs,)), ys, reduction="none")
    v = vnet(losses.detach().unsqueeze(1)).squeeze(1)
    w = v / v.sum() if normalize else v / len(v)
    grads = torch.autograd.grad((w * losses).sum(), list(params.values()), create_graph=True)
    ahead = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
    loss_meta = F.cross_entropy(functional_call(model, ahead, (xt,)), yt)
    return torch.autograd.grad(loss_meta, list(vnet.parameters())), loss_meta.detach()


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_first_order_psi_gradient_equals_the_double_backprop_lookahead(float64, seed, normalize):
    f, h = mlp(seed=seed)
    vnet = weight_net(10, seed=seed)
    xs, ys = batch2d(16, seed=seed)
    xt, yt = batch2d(8, seed=seed + 10)
    ref, ref_meta = _second_order_psi_grad(f, h, vnet, xs, ys, xt, yt, lr=0.3, normalize=normalize)
    losses, loss_meta = meta_gradient(f, h, vnet, xs, ys, xt, yt, lr=0.3, normalize=normalize)
    assert all(r.abs().max() > 1e-6 for r in ref)  # a non-trivial gradient for every parameter of V
    for p, r in zip(vnet.parameters(), ref):
        torch.testing.assert_close(p.grad, r, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(loss_meta, ref_meta, atol=1e-12, rtol=0)
    torch.testing.assert_close(losses, F.cross_entropy(h(f(xs)), ys, reduction="none"))
    assert losses.requires_grad  # kept for the parameter step


def test_weights_lie_in_their_range():
    vnet = weight_net(100, seed=0)
    losses = torch.tensor([0.0, 0.1, 1.0, 5.0, 50.0])
    raw = sample_weights(vnet, losses, normalize=False) * len(losses)  # V itself
    assert ((raw > 0) & (raw < 1)).all()
    shares = sample_weights(vnet, losses, normalize=True)
    assert (shares > 0).all() and torch.isclose(shares.sum(), torch.tensor(1.0))
    assert [m.out_features for m in vnet if isinstance(m, nn.Linear)] == [100, 1]  # the authors' 1-100-1


def test_one_step_moves_theta_and_psi_and_records_the_weights():
    f, h = mlp(k=3)
    options = PeerConfig(mwnet_hidden=16, mwnet_normalize=False)  # the recorded weight is V itself
    method = MWNet(f, h, paired_config(lr_p=0.1, momentum=0.9), options, n_source=6, seed=0)
    theta = [p.clone() for p in [*f.parameters(), *h.parameters()]]
    psi = [p.clone() for p in method.vnet.parameters()]
    xs, ys = batch2d(4, seed=1)
    xt, yt = batch2d(3, seed=2)
    idx = torch.tensor([5, 0, 2, 3])
    with torch.no_grad():
        before = F.cross_entropy(h(f(xs)), ys)
    loss_s, loss_meta = method.step(xs, ys, idx, xt, yt)
    assert not loss_s.requires_grad and not loss_meta.requires_grad
    torch.testing.assert_close(loss_s, before)  # the mean source loss at the step's start
    assert all(not torch.equal(a, b) for a, b in zip(theta, [*f.parameters(), *h.parameters()]))
    assert all(not torch.equal(a, b) for a, b in zip(psi, method.vnet.parameters()))
    assert method.draws.tolist() == [1, 0, 1, 1, 0, 1]
    # the recorded weight of a drawn sample is V at its loss under the new psi, in (0, 1)
    scores = method.scores()
    assert ((scores[idx] > 0) & (scores[idx] < 1)).all() and scores[[1, 4]].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="clean target batch"):
        method.step(xs, ys, idx, None, None)


def test_batchnorm_statistics_move_once_per_step():
    with seeded(0):
        f, d = build_features("bn_convnet", (1, 12, 12), width=4)
        h = build_classifier(d, 3)
    xs, ys = torch.randn(8, 1, 12, 12), torch.randint(0, 3, (8,))
    xt, yt = torch.randn(4, 1, 12, 12), torch.randint(0, 3, (4,))
    plain = copy.deepcopy(f).train()
    plain(xs)  # the running statistics of one train-mode forward of the source batch
    method = MWNet(f, h, paired_config(lr_p=0.1), n_source=8, seed=0)
    method.step(xs, ys, torch.arange(8), xt, yt)
    for a, b in zip(plain.buffers(), f.buffers()):
        torch.testing.assert_close(a, b)


def test_resume_is_bit_identical(tmp_path):
    source = Labeled(*batch2d(20, seed=1))
    target = Labeled(*batch2d(6, seed=2))
    schedule = Schedule(epochs=2, source_batch=4, target_batch=3)
    identity = {"test": "mwnet"}

    def run(**kw):
        f, h = mlp()
        method = MWNet(f, h, paired_config(lr_p=0.1, momentum=0.9), PeerConfig(mwnet_hidden=8), n_source=20, seed=3)
        history = train(method, source, target, schedule=schedule, seed=0, **kw)
        return method, history

    full, full_history = run()
    with pytest.raises(Killed):  # "killed" while evaluating epoch 2: the checkpoint holds epoch 1
        run(checkpoint=tmp_path / "run.ckpt", identity=identity, monitors={"m": dies_on_second_call()})
    resumed, history = run(checkpoint=tmp_path / "run.ckpt", identity=identity)
    assert [s.loss_source for s in history] == [s.loss_source for s in full_history]
    assert [s.loss_target for s in history] == [s.loss_target for s in full_history]
    for a, b in zip(resumed.state_dict().items(), full.state_dict().items()):
        assert a[0] == b[0]
    for module in ("features", "head", "vnet"):
        for a, b in zip(getattr(resumed, module).parameters(), getattr(full, module).parameters()):
            assert torch.equal(a, b)
    for a, b in zip(resumed.meta_optimizer.state_dict()["state"].values(), full.meta_optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    np.testing.assert_array_equal(resumed.scores(), full.scores())
    assert (resumed.draws == 2).all()


def test_flipped_labels_get_lower_scores():
    """Two separable Gaussian classes in 2-D, 30% of the source labels flipped, a clean target."""
    g = torch.Generator().manual_seed(0)

    def blobs(n):
        y = torch.randint(0, 2, (n,), generator=g)
        return torch.randn(n, 2, generator=g) * 0.5 + (2.0 * y - 1).unsqueeze(1) * 1.5, y

    xs, ys = blobs(400)
    flipped = torch.rand(400, generator=g) < 0.3
    noisy = torch.where(flipped, 1 - ys, ys)
    f, h = mlp(k=2, hidden=16)
    method = MWNet(f, h, paired_config(lr_p=0.1, momentum=0.9), PeerConfig(), n_source=400, seed=0)
    train(method, Labeled(xs, noisy), Labeled(*blobs(40)), schedule=Schedule(4, 32, 20), seed=0)
    auroc = roc_auc_score(~flipped.numpy(), method.scores())  # clean = positive, higher score = cleaner
    assert auroc > 0.9
