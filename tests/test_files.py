"""Image sets stored as files (:mod:`soseleto.data.files`): ``.npz`` arrays and ImageFolders."""

import numpy as np
import pytest
import torch
from PIL import Image

from soseleto.data.files import IMAGE_SUFFIXES, read_folder, read_npz


def test_npz_images_become_channels_first(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=x, y=np.array([0, 1, 1, 0], dtype=np.uint8))
    xt, yt = read_npz(tmp_path / "c.npz")
    assert xt.shape == (4, 3, 5, 6) and xt.dtype == torch.uint8 and yt.dtype == torch.int64
    assert torch.equal(xt[2, 1], torch.from_numpy(x[2, :, :, 1]))
    np.savez(tmp_path / "f.npz", x=x[..., 0], y=np.array([0.0, 1.0, 2.0, 0.0]))  # integral floats are labels
    assert read_npz(tmp_path / "f.npz")[1].tolist() == [0, 1, 2, 0]


def test_unreadable_npz_is_named(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"'my set': not a readable \.npz file"):
        read_npz(tmp_path / "bad.npz", name="my set")


def test_folder_reads_classes_in_sorted_order_and_skips_other_files(tmp_path):
    for cls, colour in (("zebra", 200), ("ant", 50)):
        (tmp_path / cls / "sub").mkdir(parents=True)
        Image.new("L", (3, 2), color=colour).save(tmp_path / cls / "a.png")
        Image.new("L", (3, 2), color=colour).save(tmp_path / cls / "sub" / "b.jpg")  # nested images count
        (tmp_path / cls / "notes.txt").write_text("skip me")
    (tmp_path / ".hidden").mkdir()
    x, y, names, paths = read_folder(tmp_path)
    assert names == ["ant", "zebra"] and y.tolist() == [0, 0, 1, 1]
    assert x.shape == (4, 1, 2, 3) and x[0].unique().tolist() == [50] and int(x[3].float().mean()) in range(195, 206)
    assert [p.split("/")[-2:] for p in paths] == [["ant", "a.png"], ["sub", "b.jpg"], ["zebra", "a.png"], ["sub", "b.jpg"]]
    assert ".png" in IMAGE_SUFFIXES and ".txt" not in IMAGE_SUFFIXES


def test_folder_colour_follows_the_first_image_and_resizes(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4), color=(255, 0, 0)).save(tmp_path / "a" / "0.png")
    Image.new("L", (6, 5), color=9).save(tmp_path / "a" / "1.png")
    x, _, _, _ = read_folder(tmp_path, size=(2, 3))
    assert x.shape == (2, 3, 2, 3) and x[1].unique().tolist() == [9]  # the gray image as RGB


def test_folder_errors_are_named(tmp_path):
    with pytest.raises(ValueError, match="has no class sub-folders"):
        read_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        read_folder(tmp_path)
    (tmp_path / "a" / "broken.png").unlink()
    x, y, names, paths = read_folder(tmp_path)
    assert len(x) == len(y) == len(paths) == 0 and names == ["a"]


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.zeros((2, 3, 3), np.uint8), y=np.array([0, "1"], dtype=object))
    with pytest.raises(ValueError, match=r"'o': array 'y' holds Python objects \(dtype=object\).*never unpickles"):
        read_npz(tmp_path / "o.npz", name="o")


@pytest.mark.parametrize("x,expected", [
    (np.array([[[0.0, 0.5], [1.0, 0.2]]]), [[0, 128, 255, 51]]),  # floats in [0, 1]: scaled by 255
    (np.array([[[0.0, 2.0], [255.0, 17.4]]], np.float32), [[0, 2, 255, 17]]),  # floats in [0, 255]: rounded
    (np.array([[[0, 2], [255, 17]]], np.int64), [[0, 2, 255, 17]]),  # integers within 0..255
])
def test_float_and_integer_pixels_become_uint8(tmp_path, x, expected):
    np.savez(tmp_path / "p.npz", x=x, y=np.array([0]))
    xt, _ = read_npz(tmp_path / "p.npz")
    assert xt.dtype == torch.uint8 and xt.flatten(1).tolist() == expected


@pytest.mark.parametrize("x,needle", [
    (np.array([[[0.0, np.nan], [1.0, 0.2]]]), "1 NaN or infinite pixel(s), the first in image 0"),
    (np.array([[[0.0, np.inf], [1.0, 0.2]]]), "1 NaN or infinite pixel(s)"),
    (np.array([[[0.0, -1.0], [300.0, 0.2]]]), "float pixels in [-1, 300]; expected [0, 1] or [0, 255]"),
    (np.array([[[0, 256], [1, 2]]]), "integer pixels in [0, 256]; expected 0..255"),
    (np.array([[["a", "b"], ["c", "d"]]]), "x has dtype <U1"),
])
def test_bad_pixels_are_named(tmp_path, x, needle):
    np.savez(tmp_path / "p.npz", x=x, y=np.array([0]))
    with pytest.raises(ValueError) as info:
        read_npz(tmp_path / "p.npz", name="pix")
    assert str(info.value).startswith("'pix': ") and needle in str(info.value)


def test_symbolic_link_loops_are_named(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (3, 2)).save(tmp_path / "a" / "0.png")
    (tmp_path / "a" / "up").symlink_to(tmp_path)  # a folder pointing back above itself
    with pytest.raises(ValueError, match=r"'set': '.*/a/up' is a symbolic link loop: it points back to"):
        read_folder(tmp_path, name="set")
    (tmp_path / "a" / "up").unlink()
    (tmp_path / "b").symlink_to(tmp_path / "b")  # a link to itself
    with pytest.raises(ValueError, match=r"'.*/b' is a symbolic link that loops or points nowhere"):
        read_folder(tmp_path)


def test_image_of_another_size_names_the_set_and_the_file(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (3, 2)).save(tmp_path / "a" / "0.png")
    Image.new("L", (4, 2)).save(tmp_path / "a" / "1.png")
    with pytest.raises(ValueError, match=r"^'my set': image '.*/a/1.png' has shape \(2, 4, 1\).*--size"):
        read_folder(tmp_path, name="my set")
    assert read_folder(tmp_path, size=(2, 3))[0].shape == (2, 1, 2, 3)
