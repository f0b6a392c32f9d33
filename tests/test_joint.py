"""Joint training (:mod:`soseleto.methods.joint`): SGD on ``(1 - w) L_s + w L_t``."""

import torch
import torch.nn.functional as F

from soseleto.config import PeerConfig
from soseleto.core.loop import Labeled
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded
from soseleto.methods.joint import joint_loss

from builders import paired_config, run_peer


def _net(seed=0):
    with seeded(seed):
        f, d = build_features("mlp", (2,), hidden=8, depth=1)
        return f, build_classifier(d, 3)


def _batch(n, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, k, (n,), generator=g)


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
    cfg = paired_config(lr_p=0.5, source_batch=6, target_batch=6, epochs=1)
    res = run_peer("joint", f, h, Labeled(xs, ys), Labeled(xt, yt), cfg, PeerConfig(target_weight=w), seed=0)
    for p, p0, g in zip(list(f.parameters()) + list(h.parameters()), params, grads):
        torch.testing.assert_close(p, p0 - 0.5 * g)
    # the history holds both losses of the step, before it
    assert (res.history[0].loss_source, res.history[0].loss_target) == (float(ls.detach()), float(lt.detach()))
