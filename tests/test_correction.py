"""Loss correction by a corruption matrix (:mod:`soseleto.methods.correction`): GLC's estimate,
the corrected loss and the noise-adaptation layer."""

import pytest
import torch

from soseleto.methods.correction import NoiseLayer, corrected_log_probs, estimate_corruption, union_loss


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
    torch.testing.assert_close(corrected_log_probs(logits, c.log()).exp(), p @ c)


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


@pytest.mark.parametrize("diag", [0.0, 1.0])
def test_noise_layer_diagonal_must_be_inside_the_unit_interval(diag):
    with pytest.raises(ValueError, match="init_diag"):
        NoiseLayer(3, init_diag=diag)
