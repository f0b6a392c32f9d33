"""Set specs, loaders and checks for ``soseleto fit`` (generated files only, no downloads)."""

import numpy as np
import pytest
import torch
from PIL import Image

from soseleto.data.user import check_labels, harmonise, load_set, parse_spec


def _npz(path, n=12, shape=(8, 8), n_classes=3, seed=0, **override):
    g = np.random.default_rng(seed)
    arrays = {"x": g.integers(0, 256, (n, *shape), dtype=np.uint8), "y": np.arange(n) % n_classes}
    arrays.update(override)
    np.savez(path, **arrays)
    return str(path)


def _folder(root, sizes):
    """ImageFolder with classes 'cat', 'dog'; ``sizes`` gives each image's (W, H)."""
    for i, size in enumerate(sizes):
        d = root / ("cat", "dog")[i % 2]
        d.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, color=(10 * i, 0, 200)).save(d / f"{i}.png")
    return str(root)


@pytest.mark.parametrize(
    "text,kind,location,split,classes",
    [
        ("cifar10:train", "torchvision", "cifar10", "train", None),
        ("MNIST:test:5,6,7,8,9", "torchvision", "mnist", "test", (5, 6, 7, 8, 9)),
        ("svhn:train:0-2,7", "torchvision", "svhn", "train", (0, 1, 2, 7)),
    ],
)
def test_parse_torchvision_specs(text, kind, location, split, classes):
    spec = parse_spec(text)
    assert (spec.kind, spec.location, spec.split, spec.classes) == (kind, location, split, classes)


def test_parse_file_and_folder_specs(tmp_path):
    f = _npz(tmp_path / "a.npz")
    assert parse_spec(f).kind == "npz" and parse_spec(f).classes is None
    assert parse_spec(f + ":0,2").classes == (0, 2) and parse_spec(f + ":0,2").location == f
    d = _folder(tmp_path / "imgs", [(8, 8)] * 2)
    assert parse_spec(d).kind == "folder" and parse_spec(d + ":1").classes == (1,)


@pytest.mark.parametrize(
    "text,error,needle",
    [
        ("mnist", ValueError, "needs a split"),
        ("mnist:valid", ValueError, "split='valid'"),
        ("svhn:train:3-1", ValueError, "range '3-1'"),
        ("svhn:train:1,1", ValueError, "repeat"),
        ("nowhere/file.npz", FileNotFoundError, "nowhere/file.npz"),
        ("imagenet:train", FileNotFoundError, "imagenet"),
    ],
)
def test_bad_specs_are_named(text, error, needle):
    with pytest.raises(error, match=needle):
        parse_spec(text)


def test_load_npz_gray_and_colour(tmp_path):
    gray = load_set(_npz(tmp_path / "g.npz", shape=(8, 6)))
    assert gray.x.shape == (12, 1, 8, 6) and gray.x.dtype == torch.uint8 and gray.n_classes == 3
    colour = load_set(_npz(tmp_path / "c.npz", shape=(8, 6, 3)))
    raw = np.load(tmp_path / "c.npz")["x"]
    assert colour.x.shape == (12, 3, 8, 6)
    assert torch.equal(colour.x[4, 2], torch.from_numpy(raw[4, :, :, 2]))  # channels moved, not mixed


def test_class_subset_renumbers_and_keeps_the_file_rows(tmp_path):
    s = load_set(_npz(tmp_path / "a.npz", n_classes=4) + ":3,1")
    assert s.n_classes == 2
    assert s.index.tolist() == [1, 3, 5, 7, 9, 11]  # labels 1, 3, 1, 3, ...
    assert s.original_label.tolist() == [1, 3] * 3 and s.y.tolist() == [1, 0] * 3


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"x": None}, r"missing array\(s\) \['x'\]"),
        ({"x": np.full((12, 8, 8), 300.0, np.float32)}, r"float pixels in \[300, 300\]"),
        ({"x": np.full((12, 8, 8), np.nan, np.float32)}, "768 NaN or infinite pixel"),
        ({"x": np.zeros((12, 8, 8), np.complex64)}, "dtype complex64"),
        ({"x": np.zeros((12, 8, 8, 2), np.uint8)}, "shape"),
        ({"y": np.arange(11)}, "y has shape"),
        ({"y": np.arange(12) - 1}, r"y\[0\] = -1 is a negative label"),
        ({"y": np.linspace(0, 1, 12)}, "non-integer"),
    ],
)
def test_bad_npz_is_rejected_naming_the_file(tmp_path, override, needle):
    arrays = {k: v for k, v in override.items() if v is not None}
    path = _npz(tmp_path / "bad.npz", **arrays)
    if override.get("x", 0) is None:  # rewrite without x
        np.savez(path, y=np.arange(12))
    with pytest.raises(ValueError, match=needle) as err:
        load_set(path)
    assert "bad.npz" in str(err.value)


def test_empty_sets_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        load_set(_npz(tmp_path / "e.npz", n=0, x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64)))
    with pytest.raises(ValueError, match=r"classes \[5\] are not labels"):
        load_set(_npz(tmp_path / "a.npz") + ":5")


def test_missing_torchvision_files_are_listed(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST/raw/t10k-images-idx3-ubyte"):
        load_set("mnist:test", data_dir=tmp_path, download=False)


def test_image_folder(tmp_path):
    s = load_set(_folder(tmp_path / "imgs", [(6, 5)] * 4))
    assert s.x.shape == (4, 3, 5, 6) and s.class_names == ["cat", "dog"] and s.y.tolist() == [0, 0, 1, 1]
    assert s.paths[0].endswith("cat/0.png")


def test_image_folder_sizes_must_agree_unless_resized(tmp_path):
    root = _folder(tmp_path / "imgs", [(6, 5), (7, 5)])
    with pytest.raises(ValueError, match="--size"):
        load_set(root)
    assert load_set(root, size=(4, 4)).x.shape == (2, 3, 4, 4)


def test_harmonise_converts_or_names_the_mismatch(tmp_path):
    a = load_set(_npz(tmp_path / "a.npz", shape=(8, 8, 3)))
    b = load_set(_npz(tmp_path / "b.npz", shape=(6, 6)))
    with pytest.raises(ValueError, match=r"mismatched image shapes.*a\.npz \(3, 8, 8\).*b\.npz \(1, 6, 6\)"):
        harmonise([a, b])
    harmonise([a, b], gray=True, size=(6, 6))
    assert a.shape == b.shape == (1, 6, 6)


def test_check_labels_names_the_sample(tmp_path):
    s = load_set(_npz(tmp_path / "a.npz", n_classes=4))
    check_labels(s, 4, against="the source")
    with pytest.raises(ValueError, match=r"label 3 \(sample 3\) is outside the 3 classes of the source"):
        check_labels(s, 3, against="the source")
