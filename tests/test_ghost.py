import copy

import pytest
import torch
import torch.nn.functional as F

from soseleto.core import ghost
from soseleto.core.forward_mode import reference_alignment
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded
from soseleto.core.soseleto import Soseleto

from builders import soseleto_config
from builders import net, random_tangents, rel_err


@pytest.mark.parametrize("name,in_shape", [("mlp", (2,)), ("lenet", (1, 28, 28)), ("cifar_quick", (3, 32, 32))])
@pytest.mark.parametrize("with_head", [False, True])
def test_ghost_alignment_and_weighted_gradients_match_references(float64, name, in_shape, with_head):
    features, head = net(name, in_shape)
    assert ghost.supports(features, head)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, *in_shape, generator=g), torch.randint(0, 3, (6,), generator=g)
    w = torch.tensor([0.3, 0.0, 1.1, 0.5, 0.0, 0.9])  # zero weights still get their alignment
    ft, ct = random_tangents(features, 2), (random_tangents(head, 3) if with_head else None)
    ref = reference_alignment(features, head, x, y, ft, ct)

    f2, h2 = copy.deepcopy(features), copy.deepcopy(head)
    losses, align = ghost.weighted_backward_and_alignment(f2, h2, x, y, w, ft, ct)
    assert rel_err(align, ref) <= 1e-10 and not align.requires_grad

    per = F.cross_entropy(head(features(x)), y, reduction="none")
    torch.testing.assert_close(losses, per.detach())
    (w * per).sum().backward()
    for p_ref, p in zip([*features.parameters(), *head.parameters()], [*f2.parameters(), *h2.parameters()]):
        torch.testing.assert_close(p.grad, p_ref.grad)


@pytest.mark.parametrize("budget", [10**9, 200])  # whole batch at once / chunks of 1 sample
@pytest.mark.parametrize("fan_in_limit", [0, 10**6])  # general path / per-sample path for every conv
def test_both_convolution_paths_match_the_reference(float64, monkeypatch, budget, fan_in_limit):
    monkeypatch.setattr(ghost, "UNFOLD_BUDGET", budget)
    monkeypatch.setattr(ghost, "PER_SAMPLE_MAX_FAN_IN", fan_in_limit)
    with seeded(0):
        features = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=2), torch.nn.ReLU(),
            torch.nn.Conv2d(4, 3, 2, bias=False), torch.nn.Flatten(),
        )
        head = torch.nn.Linear(3 * 2 * 2, 3)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 2, 7, 7, generator=g), torch.randint(0, 3, (5,), generator=g)
    w = torch.tensor([0.3, 0.0, 1.1, 0.5, 0.9])
    ft = random_tangents(features, 2)
    f2 = copy.deepcopy(features)
    _, align = ghost.weighted_backward_and_alignment(f2, copy.deepcopy(head), x, y, w, ft)
    assert rel_err(align, reference_alignment(features, head, x, y, ft)) <= 1e-10
    (w * F.cross_entropy(head(features(x)), y, reduction="none")).sum().backward()
    for p_ref, p in zip(features.parameters(), f2.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad)


@pytest.mark.parametrize("name", ["bn_convnet", "resnet18"])
def test_networks_with_batchnorm_are_not_ghost_eligible(name):
    assert not ghost.supports(*net(name, (3, 32, 32)))


def test_a_layer_used_twice_gets_both_terms(float64):
    layer = torch.nn.Linear(4, 4)
    features, head = torch.nn.Sequential(layer, torch.nn.ReLU(), layer), torch.nn.Linear(4, 3)
    assert ghost.supports(features, head)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    ft = random_tangents(features, 4)
    _, align = ghost.weighted_backward_and_alignment(features, head, x, y, torch.ones(5), ft)
    assert rel_err(align, reference_alignment(features, head, x, y, ft)) <= 1e-10


@pytest.mark.parametrize("shared", [True, False])
def test_trainer_step_identical_with_ghost_and_forward_mode(float64, shared):
    def run(alignment):
        with seeded(0):
            features, dim = build_features("lenet", (1, 28, 28))
            src, tgt = build_classifier(dim, 3), None if shared else build_classifier(dim, 2)
        cfg = soseleto_config(shared_classifier=shared, lr_p=0.05, lr_alpha=50.0, momentum=0.9, alpha_init=0.5,
                              alpha_grad="all" if shared else "features")
        tr = Soseleto(features, src, tgt, n_source=10, cfg=cfg, alignment=alignment)
        assert tr.alignment == alignment
        g = torch.Generator().manual_seed(3)
        for _ in range(2):
            xs, ys = torch.randn(5, 1, 28, 28, generator=g), torch.randint(0, 3, (5,), generator=g)
            xt, yt = torch.randn(4, 1, 28, 28, generator=g), torch.randint(0, 3 if shared else 2, (4,), generator=g)
            tr.step(xs, ys, torch.tensor([0, 2, 4, 6, 8]), xt, yt)
        return tr

    a, b = run("ghost"), run("forward")
    torch.testing.assert_close(a.alpha, b.alpha)
    assert not torch.equal(a.alpha, torch.full_like(a.alpha, 0.5))
    for p, q in zip(a.optimizer.param_groups[0]["params"], b.optimizer.param_groups[0]["params"]):
        torch.testing.assert_close(p, q)


def test_auto_picks_ghost_only_for_per_sample_networks():
    cfg = soseleto_config()
    assert Soseleto(*net("mlp", (2,)), None, n_source=3, cfg=cfg).alignment == "ghost"
    assert Soseleto(*net("bn_convnet", (3, 8, 8)), None, n_source=3, cfg=cfg).alignment == "forward"
    with pytest.raises(ValueError, match="alignment='ghost'"):
        Soseleto(*net("bn_convnet", (3, 8, 8)), None, n_source=3, cfg=cfg, alignment="ghost")
