import numpy as np
import pytest
import torch

from soseleto.noise import confusion_matrix, corrupt_labels, realised_noise


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
    assert realised_noise(y, noisy) == pytest.approx(0.4, abs=0.01)
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
