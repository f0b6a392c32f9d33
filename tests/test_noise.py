import numpy as np
import pytest
import torch

from soseleto.data.noise import confusion_matrix, corrupt_labels


@pytest.mark.parametrize("noise", [0.0, 0.3, 0.5])
def test_confusion_matrix_is_row_stochastic_with_fixed_diagonal(noise):
    c = confusion_matrix(10, noise, seed=1)
    np.testing.assert_allclose(np.diag(c), 1 - noise)
    np.testing.assert_allclose(c.sum(axis=1), 1.0)
    assert (c >= 0).all()
    np.testing.assert_array_equal(c, confusion_matrix(10, noise, seed=1))
    if noise:
        assert not np.allclose(c, confusion_matrix(10, noise, seed=2))


def test_corrupt_labels_follows_the_matrix():
    c = confusion_matrix(4, 0.4, seed=0)
    y = torch.arange(4).repeat_interleave(20000)
    noisy = corrupt_labels(y, c, seed=3)
    assert float((noisy != y).double().mean()) == pytest.approx(0.4, abs=0.01)  # the realised noise
    for i in range(4):
        freq = torch.bincount(noisy[y == i], minlength=4).double() / 20000
        np.testing.assert_allclose(freq.numpy(), c[i], atol=0.012)
    assert torch.equal(noisy, corrupt_labels(y, c, seed=3))


@pytest.mark.parametrize("noise", [-0.1, 1.0])
def test_bad_noise_level_is_named(noise):
    with pytest.raises(ValueError, match="noise="):
        confusion_matrix(10, noise, seed=0)


def test_labels_outside_matrix_are_rejected():
    with pytest.raises(ValueError, match="3 classes"):
        corrupt_labels(torch.tensor([0, 5]), confusion_matrix(3, 0.2, seed=0), seed=0)
    with pytest.raises(ValueError, match="3 classes"):
        corrupt_labels(torch.tensor([0, -1]), confusion_matrix(3, 0.2, seed=0), seed=0)


def test_matrix_must_be_square_and_row_stochastic():
    with pytest.raises(ValueError, match="not a square row-stochastic"):
        corrupt_labels(torch.tensor([0, 1]), np.full((2, 2), 0.6), seed=0)
    with pytest.raises(ValueError, match="not a square row-stochastic"):
        corrupt_labels(torch.tensor([0, 1]), np.full((2, 3), 1 / 3), seed=0)
    with pytest.raises(ValueError, match="n_classes=1"):
        confusion_matrix(1, 0.2, seed=0)


def test_zero_noise_keeps_every_label():
    y = torch.arange(5).repeat(10)
    assert torch.equal(corrupt_labels(y, confusion_matrix(5, 0.0, seed=0), seed=1), y)
