"""Learning to Reweight (:mod:`soseleto.methods.l2rw`): the weights of one step against Ren et
al.'s look-ahead by double backprop, and the all-rejected batch."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from soseleto.core.loop import Labeled
from soseleto.methods.l2rw import L2RW, l2rw_weights

from builders import batch2d, mlp, paired_config, run_peer


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
    f, h = mlp(seed=seed)
    xs, ys = batch2d(16, seed=seed)
    xt, yt = batch2d(8, seed=seed + 10)
    losses, w, loss_t = l2rw_weights(f, h, xs, ys, xt, yt)
    ref = _lookahead_weights(f, h, xs, ys, xt, yt, lr=0.1)
    assert ref.sum() > 0 and (ref == 0).any()  # a non-trivial case: some samples rejected
    torch.testing.assert_close(w, ref.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(losses, F.cross_entropy(h(f(xs)), ys, reduction="none"))
    torch.testing.assert_close(loss_t, F.cross_entropy(h(f(xt)), yt).detach())


def test_l2rw_all_rejected_gives_zero_step(float64):
    # With a zero classifier p is uniform, so grad l_j . grad L_clean = (p - e_yj).(p - e_0) (h_j.h_t + 1)
    # = -(h_j.h_t + 1) / K < 0 for every source label y_j != 0 (ReLU features h >= 0): all rejected.
    f, h = mlp()
    nn.init.zeros_(h.weight), nn.init.zeros_(h.bias)
    xs, _ = batch2d(4, seed=3)
    source, target = Labeled(xs, torch.tensor([1, 2, 1, 2])), Labeled(*batch2d(1, seed=4))
    target.y[:] = 0
    _, w, _ = l2rw_weights(f, h, source.x, source.y, target.x, target.y)
    assert torch.equal(w, torch.zeros(4))
    before = [p.clone() for p in list(f.parameters()) + list(h.parameters())]
    cfg = paired_config(lr_p=0.1, source_batch=4, target_batch=1, epochs=1)
    res = run_peer("l2rw", f, h, source, target, cfg, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, list(f.parameters()) + list(h.parameters())))
    assert res.scores.tolist() == [0.0] * 4


def test_scores_are_the_mean_normalised_weight_per_draw():
    f, h = mlp()
    method = L2RW(f, h, paired_config(lr_p=0.1), n_source=5)
    method.weight_sum[:] = torch.tensor([3.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    method.draws[:] = torch.tensor([2, 1, 1, 0, 3], dtype=torch.float64)
    assert method.scores().tolist() == [1.5, 0.0, 1.0, 0.0, 0.0]  # never drawn: 0
    xs, ys = batch2d(3, seed=5)
    xt, yt = batch2d(2, seed=6)
    idx = torch.tensor([4, 0, 2])
    _, w, _ = l2rw_weights(*mlp(), xs, ys, xt, yt)
    loss_s, loss_t = method.step(xs, ys, idx, xt, yt)
    assert not loss_s.requires_grad and not loss_t.requires_grad
    assert method.draws.tolist() == [3, 1, 2, 0, 4]
    torch.testing.assert_close(method.weight_sum[idx], torch.tensor([0.0, 3.0, 1.0], dtype=torch.float64) + 3 * w.double())
