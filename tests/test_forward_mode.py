"""The forward-mode path with its unrecorded conv/batch-norm tangents, on a real BatchNorm network."""

import copy

import torch
import torch.autograd.forward_ad as fwad

from soseleto.bilevel import losses_and_alignment, reference_alignment
from soseleto.models import build_classifier, build_features
from soseleto.rng import seeded


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
