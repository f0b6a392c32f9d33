"""Image tensors and label indices (:mod:`soseleto.data.images`)."""

import pytest
import torch

from soseleto.data import images, sets


def test_class_balanced_indices_and_remap():
    y = torch.tensor([5, 6, 7, 5, 6, 7, 5, 6, 7, 0])
    idx = images.class_balanced_indices(y, 2, seed=0, classes=[5, 6, 7])
    assert torch.bincount(y[idx]).tolist()[5:] == [2, 2, 2]
    assert torch.equal(idx, idx.sort().values)
    assert torch.equal(images.remap_labels(y[idx], [5, 6, 7]).sort().values, torch.tensor([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="class 0 has 1 samples"):
        images.class_balanced_indices(y, 2, seed=0, classes=[0])
    # every class present by default; the draw follows the seed
    assert torch.bincount(y[images.class_balanced_indices(y, 1, seed=0)]).tolist() == [1, 0, 0, 0, 0, 1, 1, 1]
    draws = {tuple(images.class_balanced_indices(y, 1, seed=s, classes=[5]).tolist()) for s in range(10)}
    assert len(draws) > 1


def test_class_rows_and_remap_in_the_order_given():
    x = torch.arange(6).view(6, 1, 1, 1).to(torch.uint8)
    y = torch.tensor([3, 1, 0, 3, 2, 1])
    idx = images.class_rows(y, [3, 1])
    xs, ys = x[idx], y[idx]
    assert idx.tolist() == [0, 1, 3, 5] and ys.tolist() == [3, 1, 3, 1] and xs.flatten().tolist() == [0, 1, 3, 5]
    assert images.remap_labels(ys, [3, 1]).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"labels outside classes=\[3, 1\]"):
        images.remap_labels(y[:3], [3, 1])


def test_gray_resize_and_float():
    x, _ = sets.generated("svhn", "train", 4, seed=0)
    g = images.to_gray_resized(x, (28, 28))
    assert g.shape == (4, 1, 28, 28) and g.dtype == torch.uint8
    mean, std = images.channel_stats(g)
    f = images.to_float(g, mean=mean, std=std)
    assert abs(float(f.mean())) < 1e-4 and abs(float(f.std()) - 1) < 0.05
    plain = images.to_float(g)
    assert plain.dtype == torch.float32 and float(plain.min()) >= 0 and float(plain.max()) <= 1
    assert torch.equal(plain, g.float() / 255)


def test_gray_images_keep_their_values_when_only_resized():
    x = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(images.to_gray_resized(x, (4, 4)), torch.full((2, 1, 4, 4), 77, dtype=torch.uint8))
    rgb = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    rgb[:, 0] = 255  # pure red: luminance 0.299
    assert images.to_gray_resized(rgb, (4, 4)).unique().tolist() == [round(0.299 * 255)]


def test_channel_stats_per_channel():
    x = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    x[:, 1] = 255
    x[1, 2] = 255
    mean, std = images.channel_stats(x)
    torch.testing.assert_close(mean, torch.tensor([0.0, 1.0, 0.5]))
    assert float(std[0]) == pytest.approx(1e-6) and float(std[2]) > 0.5  # constant channels: no division by zero
