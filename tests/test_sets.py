"""Labelled image sets (:mod:`soseleto.data.sets`): torchvision sets and their generated stand-ins,
files as data sets, and the manifest."""

from pathlib import Path

import numpy as np
import pytest
import torch

from soseleto.config import DataConfig
from soseleto.data import sets

GENERATED = DataConfig(source="generated", dir="unused", download=False, generated_train=120, generated_test=30)


@pytest.mark.parametrize("name", ["cifar10", "svhn", "mnist"])
def test_generated_matches_shape_and_classes(name):
    x, y = sets.generated(name, "train", 300, seed=0)
    assert x.dtype == torch.uint8 and y.dtype == torch.int64
    assert tuple(x.shape[1:]) == sets.DATASETS[name].shape and len(x) == len(y) == 300
    assert set(y.tolist()) == set(range(10))
    x2, _ = sets.generated(name, "test", 300, seed=0)
    assert not torch.equal(x, x2)
    assert torch.equal(x, sets.generated(name, "train", 300, seed=0)[0])


def test_generated_is_learnable_by_nearest_class_mean():
    x, y = sets.generated("cifar10", "train", 500, seed=0)
    xt, yt = sets.generated("cifar10", "test", 200, seed=0)
    f, ft = x.float().flatten(1), xt.float().flatten(1)
    means = torch.stack([f[y == c].mean(0) for c in range(10)])
    pred = torch.cdist(ft, means).argmin(1)
    assert (pred == yt).float().mean() > 0.5


def test_missing_files_name_the_expected_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1.*download: true"):
        sets.load_torchvision("cifar10", "train", tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        sets.load_labelled("svhn", "train", DataConfig(source="torchvision", dir=str(tmp_path)))


def test_corrupt_file_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in sets.DATASETS["mnist"].files["train"]:
        (tmp_path / f).write_bytes(b"\x00\x00\x08\x03 truncated")
    with pytest.raises(ValueError, match="could not be read"):
        sets.load_torchvision("mnist", "train", tmp_path)


def test_unknown_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="'imagenet'"):
        sets.generated("imagenet", "train", 3, seed=0)
    with pytest.raises(ValueError, match="source='web'"):
        DataConfig(source="web")
    with pytest.raises(ValueError, match="split='valid'"):
        sets.load_torchvision("mnist", "valid", tmp_path)
    with pytest.raises(FileNotFoundError, match="data set 'imagenet': no such file or folder"):
        sets.load_labelled("imagenet", "train", GENERATED)


def test_load_labelled_and_manifest_follow_the_data_section():
    x, y = sets.load_labelled("mnist", "test", GENERATED)
    assert x.shape == (30, 1, 28, 28) and torch.equal(x, sets.generated("mnist", "test", 30, seed=0)[0])
    assert torch.equal(y, sets.generated("mnist", "test", 30, seed=0)[1])
    assert torch.equal(sets.load_labelled("MNIST", "train", GENERATED)[1], sets.generated("mnist", "train", 120, seed=0)[1])
    m = sets.manifest("svhn", GENERATED)
    assert m["train"]["n"] == 120 and m["test"]["n"] == 30 and sum(m["train"]["class_counts"]) == 120
    assert m["shape"] == [3, 32, 32] and m["source"] == "generated" and m["dataset"] == "svhn"


def test_a_file_is_a_data_set_with_only_a_train_split(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.zeros((6, 5, 5), np.uint8), y=np.array([0, 1, 2, 0, 1, 4]))
    x, y = sets.load_labelled(str(path), "train", GENERATED)
    assert x.shape == (6, 1, 5, 5) and y.tolist() == [0, 1, 2, 0, 1, 4]
    with pytest.raises(ValueError, match="is a file and has no 'test' split"):
        sets.load_labelled(str(path), "test", GENERATED)
    assert not sets.is_named(str(path)) and not sets.has_test_split(str(path))
    assert sets.is_named("CIFAR10") and sets.has_test_split("svhn")
    assert sets.n_classes(str(path), y) == 5 and sets.n_classes("cifar100", y) == 100
    m = sets.manifest(str(path), GENERATED)
    assert m["source"] == "file" and set(m) == {"dataset", "source", "shape", "train"}
    assert m["train"] == {"n": 6, "class_counts": [2, 2, 1, 0, 1]} and m["shape"] == [1, 5, 5]


def test_an_image_folder_is_a_data_set(tmp_path):
    from PIL import Image

    for i, cls in enumerate(["a", "b", "b"]):
        (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 3), color=10 * i).save(tmp_path / "imgs" / cls / f"{i}.png")
    x, y = sets.load_labelled(str(tmp_path / "imgs"), "train", GENERATED)
    assert x.shape == (3, 1, 3, 4) and y.tolist() == [0, 1, 1] and x[2].unique().tolist() == [20]


def _offline(monkeypatch, module):
    """Make torchvision's downloads in ``module`` fail as without internet, after writing a partial file."""
    from urllib.error import URLError

    def fail(url, download_root, filename=None, **kw):
        Path(download_root, (filename or "x") + ".part").write_bytes(b"partial")
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(module, "download_and_extract_archive", fail)


def test_a_failed_download_says_how_to_fix_it_and_leaves_no_folders(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist

    _offline(monkeypatch, tv_mnist)
    data = tmp_path / "data"
    with pytest.raises(ValueError) as info:
        sets.load_torchvision("mnist", "train", data, download=True)
    msg = str(info.value)
    assert "mnist (train) could not be downloaded into data_dir=" in msg and "Error downloading" in msg
    for part in (f"place the files {data}/MNIST/raw/train-images-idx3-ubyte, {data}/MNIST/raw/train-labels-idx1-ubyte",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
                 "data.download: false", "--configfile config/smoke.yaml"):
        assert part in msg
    assert not data.exists()  # created by the attempt: removed with its partial files
    data.mkdir()
    (data / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="could not be downloaded"):
        sets.load_torchvision("mnist", "test", data, download=True)
    assert sorted(p.name for p in data.iterdir()) == ["mine.txt"]  # only what the attempt created is gone


def test_a_failed_cifar_download_names_its_url(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    _offline(monkeypatch, tv_cifar)
    with pytest.raises(ValueError, match=r"cifar-10-batches-py/data_batch_1.*cifar-10-python\.tar\.gz"):
        sets.load_torchvision("cifar10", "train", tmp_path / "d", download=True)
    assert not (tmp_path / "d").exists()


def test_a_file_that_does_not_match_torchvision_md5_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in sets.DATASETS["cifar10"].files["test"]:
        (tmp_path / f).write_bytes(b"not the CIFAR-10 test batch")
    with pytest.raises(ValueError, match=r"test_batch' has md5 [0-9a-f]{32}, but torchvision expects "
                                         r"40351d587109b95175f43aff81a1287e"):
        sets.load_torchvision("cifar10", "test", tmp_path)
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn/test_32x32.mat").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"test_32x32\.mat' has md5 .* expects eb5a983be6a315427106f1b164d9cef3"):
        sets.load_torchvision("svhn", "test", tmp_path / "svhn")


def test_mnist_archives_and_extracted_files_are_checked(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"a damaged archive")
    for f in sets.DATASETS["mnist"].files["test"]:
        (tmp_path / f).write_bytes(b"\x00\x00\x08\x03")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz' has md5 .* expects ec29112dd5afa0611ce80d1b7f02629c"):
        sets.load_torchvision("mnist", "test", tmp_path)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    header = np.array([2051, 10000, 28, 28], dtype=">u4").tobytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(header + bytes(100))  # right header, truncated
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte' is not the expected idx file \(magic number "
                                         r"2051, 10000 samples of 28x28, 116 bytes; expected magic number 2051, "
                                         r"10000 samples of 28x28, 7840016"):
        sets.load_torchvision("mnist", "test", tmp_path)
