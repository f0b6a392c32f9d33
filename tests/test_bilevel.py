import copy

import pytest
import torch

from soseleto.bilevel import losses_and_alignment, reference_alignment, updated_alpha

from gradcheck import net, random_tangents, rel_err


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


def test_updated_alpha_clips_to_range():
    alpha = torch.tensor([0.05, 0.5, 1.0, 1.05])
    out = updated_alpha(alpha.clone(), torch.tensor([-10.0, 1.0, 10.0, 0.0]), step=0.1, lo=0.0, hi=1.1)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.6, 1.1, 1.05]))
