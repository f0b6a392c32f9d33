import pytest
import torch

from soseleto import data


@pytest.mark.parametrize("name", ["cifar10", "svhn", "mnist"])
def test_generated_matches_shape_and_classes(name):
    x, y = data.generated(name, "train", 300, seed=0)
    assert x.dtype == torch.uint8 and y.dtype == torch.int64
    assert tuple(x.shape[1:]) == data.DATASETS[name].shape and len(x) == len(y) == 300
    assert set(y.tolist()) == set(range(10))
    x2, _ = data.generated(name, "test", 300, seed=0)
    assert not torch.equal(x, x2)
    assert torch.equal(x, data.generated(name, "train", 300, seed=0)[0])


def test_generated_is_learnable_by_nearest_class_mean():
    x, y = data.generated("cifar10", "train", 500, seed=0)
    xt, yt = data.generated("cifar10", "test", 200, seed=0)
    f, ft = x.float().flatten(1), xt.float().flatten(1)
    means = torch.stack([f[y == c].mean(0) for c in range(10)])
    pred = torch.cdist(ft, means).argmin(1)
    assert (pred == yt).float().mean() > 0.5


def test_missing_files_name_the_expected_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1.*download: true"):
        data.load_torchvision("cifar10", "train", tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        data.load("svhn", "train", source="torchvision", data_dir=tmp_path)


def test_corrupt_file_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in data.DATASETS["mnist"].files["train"]:
        (tmp_path / f).write_bytes(b"\x00\x00\x08\x03 truncated")
    with pytest.raises(ValueError, match="could not be read"):
        data.load_torchvision("mnist", "train", tmp_path)


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="'imagenet'"):
        data.generated("imagenet", "train", 3, seed=0)
    with pytest.raises(ValueError, match="source='web'"):
        data.load("mnist", "train", source="web")


def test_class_balanced_indices_and_remap():
    y = torch.tensor([5, 6, 7, 5, 6, 7, 5, 6, 7, 0])
    idx = data.class_balanced_indices(y, 2, seed=0, classes=[5, 6, 7])
    assert torch.bincount(y[idx]).tolist()[5:] == [2, 2, 2]
    assert torch.equal(data.remap_labels(y[idx], [5, 6, 7]).sort().values, torch.tensor([0, 0, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="class 0 has 1 samples"):
        data.class_balanced_indices(y, 2, seed=0, classes=[0])


def test_gray_resize_and_float():
    x, _ = data.generated("svhn", "train", 4, seed=0)
    g = data.to_gray_resized(x, (28, 28))
    assert g.shape == (4, 1, 28, 28) and g.dtype == torch.uint8
    mean, std = data.channel_stats(g)
    f = data.to_float(g, mean=mean, std=std)
    assert abs(float(f.mean())) < 1e-4 and abs(float(f.std()) - 1) < 0.05


def test_load_configured_and_manifest_follow_the_data_section():
    cfg = {"source": "generated", "dir": "unused", "download": False, "generated_train": 120, "generated_test": 30}
    x, y = data.load_configured("mnist", "test", cfg)
    assert x.shape == (30, 1, 28, 28) and torch.equal(x, data.generated("mnist", "test", 30, seed=0)[0])
    m = data.manifest("svhn", cfg)
    assert m["train"]["n"] == 120 and m["test"]["n"] == 30 and sum(m["train"]["class_counts"]) == 120
    assert m["shape"] == [3, 32, 32]
