"""MNIST-like archives recompressed by someone else are accepted by their decoded content
(:mod:`soseleto.data.integrity`), and refused when that content is wrong."""

import gzip
import hashlib

import numpy as np
import pytest
import torch

from soseleto.data import integrity, sets

COUNTS = {"train": 12, "test": 6}  # samples per split of the small idx files made here


def _idx(split, kind, seed):
    """The bytes of a small idx file: images (N, 28, 28) uint8 or labels (N,) uint8."""
    n = COUNTS[split]
    g = np.random.default_rng(seed)
    if kind == "images":
        data = g.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        return np.array([2051, n, 28, 28], dtype=">u4").tobytes() + data.tobytes(), data
    data = g.integers(0, 10, n, dtype=np.uint8)
    return np.array([2049, n], dtype=">u4").tobytes() + data.tobytes(), data


@pytest.fixture
def archives(tmp_path, monkeypatch):
    """Fashion-MNIST's four archives, compressed here (so none has torchvision's md5), in ``raw/``."""
    monkeypatch.setattr(integrity, "IDX_COUNTS", COUNTS)
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    content = {}
    for i, (split, prefix) in enumerate((("train", "train"), ("test", "t10k"))):
        for j, kind in enumerate(("images", "labels")):
            name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            raw_bytes, data = _idx(split, kind, seed=2 * i + j)
            (raw / f"{name}.gz").write_bytes(gzip.compress(raw_bytes, compresslevel=1, mtime=0))
            content[f"FashionMNIST/raw/{name}"] = (raw_bytes, data)
    return tmp_path, content


def test_a_recompressed_archive_with_the_right_content_is_accepted_and_extracted(archives, monkeypatch):
    root, content = archives
    # the decoded content's checksum is known for these generated files: it is checked as well
    monkeypatch.setattr(integrity, "DECODED_SHA256", {k: hashlib.sha256(b).hexdigest() for k, (b, _) in content.items()})
    x, y = sets.load_torchvision("fashionmnist", "test", root)  # no download: extracted from the archives
    images, labels = content["FashionMNIST/raw/t10k-images-idx3-ubyte"][1], content["FashionMNIST/raw/t10k-labels-idx1-ubyte"][1]
    assert torch.equal(x, torch.from_numpy(images)[:, None]) and torch.equal(y, torch.from_numpy(labels).long())
    for rel, (raw_bytes, _) in content.items():
        assert (root / rel).read_bytes() == raw_bytes  # every split extracted, as torchvision needs
    x_train, _ = sets.load_torchvision("fashionmnist", "train", root)  # archives and extracted files: checked again
    assert x_train.shape == (12, 1, 28, 28)


def test_header_and_size_are_checked_when_no_checksum_is_known(archives):
    root, content = archives
    assert integrity.DECODED_SHA256 == {}  # torchvision publishes only the archives' md5s
    x, _ = sets.load_torchvision("fashionmnist", "test", root)
    assert x.shape == (6, 1, 28, 28)


@pytest.mark.parametrize("damage,needle", [
    (lambda b: b[:-5], r"magic number 2051, 6 samples of 28x28, 4715 bytes; expected magic number 2051, 6 samples "
                       r"of 28x28, 4720 bytes"),
    (lambda b: np.array([2051, 7, 28, 28], dtype=">u4").tobytes() + b[16:], "7 samples"),
    (lambda b: np.array([2049, 6, 28, 28], dtype=">u4").tobytes() + b[16:], "magic number 2049"),
])
def test_an_archive_that_decodes_to_the_wrong_idx_file_is_refused(archives, damage, needle):
    root, content = archives
    rel = "FashionMNIST/raw/t10k-images-idx3-ubyte"
    (root / f"{rel}.gz").write_bytes(gzip.compress(damage(content[rel][0])))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz' has md5 [0-9a-f]{32}, but torchvision expects "
                                         r"[0-9a-f]{32}, and what it decodes to is not the expected idx file \(.*" + needle):
        sets.load_torchvision("fashionmnist", "test", root)
    assert not (root / rel).exists()  # nothing extracted from a refused archive


def test_wrong_content_under_a_known_checksum_and_a_broken_archive_are_refused(archives, monkeypatch):
    root, content = archives
    rel = "FashionMNIST/raw/t10k-labels-idx1-ubyte"
    monkeypatch.setattr(integrity, "DECODED_SHA256", {rel: "0" * 64})
    with pytest.raises(ValueError, match=r"content SHA-256 [0-9a-f]{64}; expected 0{64}"):
        sets.load_torchvision("fashionmnist", "test", root)
    monkeypatch.setattr(integrity, "DECODED_SHA256", {})
    (root / f"{rel}.gz").write_bytes(gzip.compress(content[rel][0])[:-12])  # a truncated gzip stream
    with pytest.raises(ValueError, match="it cannot be decoded"):
        sets.load_torchvision("fashionmnist", "test", root)
