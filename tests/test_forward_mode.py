"""Forward-mode alignments (:mod:`soseleto.core.forward_mode`): per-sample losses and
``a_j = d l_j/dtheta . g`` in one dual-number forward, against the per-sample reference, on every
model; the unrecorded conv/batch-norm tangents on a real BatchNorm network."""

import copy

import pytest
import torch
import torch.autograd.forward_ad as fwad

from soseleto.core.forward_mode import losses_and_alignment, reference_alignment
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded

from builders import net, random_tangents, rel_err


@pytest.mark.parametrize(
    "name,in_shape",
    [("mlp", (2,)), ("bn_convnet", (3, 8, 8)), ("lenet", (1, 28, 28)), ("cifar_quick", (3, 32, 32))],
)
def test_forward_mode_alignment_matches_per_sample_loop(float64, name, in_shape):
    features, head = net(name, in_shape)
    features.train()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, *in_shape, generator=g)
    y = torch.randint(0, 3, (7,), generator=g)
    tangents = random_tangents(features, 2)
    ref = reference_alignment(features, head, x, y, tangents)
    losses, align = losses_and_alignment(features, head, x, y, tangents)
    assert losses.shape == align.shape == (7,)
    assert not align.requires_grad and losses.requires_grad
    assert rel_err(align, ref) <= 1e-5


def test_alignment_with_classifier_tangents(float64):
    features, head = net("mlp", (4,))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    ft, ct = random_tangents(features, 3), random_tangents(head, 4)
    ref = reference_alignment(features, head, x, y, ft, ct)
    _, align = losses_and_alignment(features, head, x, y, ft, ct)
    assert rel_err(align, ref) <= 1e-5
    # the classifier part is really included: dropping it changes the result
    _, without = losses_and_alignment(features, head, x, y, ft)
    assert rel_err(without, ref) > 1e-3


def test_batchnorm_running_stats_updated_once_like_a_plain_forward(float64):
    features, head = net("bn_convnet", (3, 8, 8))
    plain = copy.deepcopy(features)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 3, (6,))
    plain.train()(x)
    features.train()
    losses_and_alignment(features, head, x, y, random_tangents(features, 5))
    for (name, a), (_, b) in zip(features.named_buffers(), plain.named_buffers()):
        assert torch.equal(a, b), name
    # ... and the source losses are exactly the plain forward's
    losses, _ = losses_and_alignment(copy.deepcopy(plain), head, x, y, random_tangents(plain, 5))
    expected = torch.nn.functional.cross_entropy(head(copy.deepcopy(plain)(x)), y, reduction="none")
    torch.testing.assert_close(losses, expected)



def test_resnet18_alignment_matches_per_sample_loop_and_updates_running_stats_once(float64):
    with seeded(0):
        features, dim = build_features("resnet18", (3, 32, 32))
        head = build_classifier(dim, 4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 3, 32, 32, generator=g), torch.randint(0, 4, (5,), generator=g)
    tangents = {n: torch.randn(p.shape, generator=g) for n, p in features.named_parameters()}
    plain = copy.deepcopy(features).train()
    expected = torch.nn.functional.cross_entropy(head(plain(x)), y, reduction="none")
    ref = reference_alignment(features.train(), head, x, y, tangents)

    losses, align = losses_and_alignment(features, head, x, y, tangents)
    assert float((align - ref).abs().max() / ref.abs().max()) <= 1e-10
    torch.testing.assert_close(losses, expected)
    for (name, a), (_, b) in zip(features.named_buffers(), plain.named_buffers()):
        torch.testing.assert_close(a, b, msg=name)
    # the source backward through the custom functions equals the plain one
    losses.sum().backward()
    expected.sum().backward()
    for (name, p), q in zip(features.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_no_activation_tangent_is_saved_for_the_source_backward():
    """A saved dual tensor keeps its tangent until the pass ends; the custom layers save primals."""
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True),
        torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
    )
    head = torch.nn.Linear(4 * 2 * 2, 3)
    x, y = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    tangents = {n: torch.randn(p.shape) for n, p in features.named_parameters()}
    saved = []

    def pack(t):
        saved.append((t.dim(), fwad.unpack_dual(t).tangent is not None))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses_and_alignment(features, head, x, y, tangents)
    assert sum(dim == 4 for dim, _ in saved) >= 8  # conv, batch norm, relu and pool inputs/outputs
    assert not any(dim == 4 and has_tangent for dim, has_tangent in saved)
