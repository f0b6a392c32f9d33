"""Image sets stored as files: an ``.npz`` of arrays ``x``/``y`` or an ImageFolder directory.

Both readers return uint8 ``(N, C, H, W)`` images and int64 ``(N,)`` labels and raise
``ValueError`` naming the file and what is wrong with it.

Pixels of an ``.npz`` may be uint8, other integers within 0..255, or floats: floats all within
[0, 1] are scaled by 255, floats within [0, 255] are rounded; NaN, infinities and values outside
those ranges are refused. Arrays of Python objects are refused: loading them would unpickle
code from the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from soseleto import validate

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_npz(path: str | Path, *, name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrays ``x`` ``(N, H, W)`` or ``(N, H, W, C)`` (pixels: see the module docstring) and ``y``
    ``(N,)`` non-negative integers -> uint8 ``(N, C, H, W)`` and int64 ``(N,)``. The archive's
    headers are checked first (:func:`soseleto.data.validate.load_npz`): a damaged or truncated
    file, an array larger than memory or a decompression bomb is refused before it is read."""
    path = Path(path)
    name = name or str(path)
    found = validate.inspect_npz(path, name)
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise ValueError(f"{name!r}: missing array(s) {missing}; found {sorted(found)} (need x: (N, H, W[, C]) uint8, y: (N,) int)")
    arrays = validate.load_npz(path, name, keys=("x", "y"), per_pixel="x")
    x, y = array_images(arrays["x"], name), arrays["y"]
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{name!r}: y has shape {y.shape} but x has {x.shape[0]} images; expected y of shape ({x.shape[0]},)")
    return x, torch.from_numpy(validate.labels(y, name))


def _pixels(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as uint8 pixels 0..255 (see the module docstring); raises ``ValueError`` naming the problem."""
    if x.dtype == np.uint8 or x.size == 0 and np.issubdtype(x.dtype, np.number):
        return x.astype(np.uint8, copy=False)
    if np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{name!r}: x has integer pixels in [{lo}, {hi}]; expected 0..255 (uint8)")
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name!r}: x has dtype {x.dtype}; expected uint8 pixel values 0..255 (or floats in [0, 1])")
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name!r}: x has {int(bad.sum())} NaN or infinite pixel(s), the first in image {first}; "
                         "expected finite pixel values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"{name!r}: x has float pixels in [{lo:g}, {hi:g}]; expected [0, 1] or [0, 255]")
    scale = 255.0 if hi <= 1.0 else 1.0  # [0, 1] images are the common float convention
    return np.rint(x.astype(np.float64) * scale).astype(np.uint8)


def list_folder(root: str | Path, *, name: str | None = None) -> tuple[list[Path], list[int], list[str]]:
    """The images of ImageFolder ``root/<class>/<image>`` without reading them: ``(paths, labels,
    class names)``, classes in sorted order, files sorted within each class. Raises ``ValueError``
    for a root without class folders, a folder that cannot be listed, a name that is not UTF-8 and
    a symbolic link that loops or points nowhere."""
    root = Path(root)
    name = name or str(root)
    try:
        return _list(root, name)
    except OSError as err:
        raise ValueError(f"{name!r}: cannot list {err.filename or str(root)!r} ({err.strerror or err})") from None


def _list(root: Path, name: str) -> tuple[list[Path], list[int], list[str]]:
    for entry in root.iterdir():
        _check_link(entry, root, name)
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise ValueError(f"{name!r}: {str(root)!r} has no class sub-folders (ImageFolder layout: ROOT/CLASS/image.png)")
    paths, labels = [], []
    for label, cls in enumerate(names):
        _check_text(root / cls, name)
        for f in sorted((root / cls).rglob("*")):
            _check_link(f, root, name)
            if f.suffix.lower() in IMAGE_SUFFIXES:
                _check_text(f, name)
                paths.append(f), labels.append(label)
    return paths, labels, names


def _check_text(f: Path, name: str) -> None:
    """Refuse a file or folder name that is not valid UTF-8: weights.csv lists image paths as text."""
    try:
        str(f).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name!r}: the name {os.fsencode(f)!r} is not valid UTF-8 text, and weights.csv lists "
                         "every image path as UTF-8; rename it") from None


def read_folder(root: str | Path, *, size: tuple[int, int] | None = None, name: str | None = None):
    """ImageFolder ``root/<class>/<image>``: ``(x, y, class names, image paths)``; classes in sorted
    order; gray when the first image is gray, RGB otherwise; ``size`` (H, W) resizes while reading.

    ``x`` is uint8 ``(N, C, H, W)``, ``y`` int64 ``(N,)``. Raises ``ValueError`` naming the file for
    an image that cannot be read, one of another size (without ``size``) and a symbolic link that
    loops or points nowhere.
    """
    name = name or str(root)
    size = validate.check_size(size)
    files, labels, names = list_folder(root, name=name)
    images: list[np.ndarray] = []
    mode = None  # of the first image: all gray -> (1, H, W), otherwise RGB
    for f in files:
        arr, mode = read_image(f, mode, size, name)
        if not images:  # all of them will be this size: do they fit in memory?
            validate.check_memory(validate.image_bytes(len(files), arr.shape), name,
                                  f"reading {len(files)} images of {arr.shape[0]}x{arr.shape[1]} pixels")
        elif arr.shape != images[0].shape:
            raise ValueError(
                f"{name!r}: image {str(f)!r} has shape {arr.shape}, {str(files[0])!r} has {images[0].shape} "
                "(H, W, C); use --size HxW to resize them all"
            )
        images.append(arr)
    paths = [str(f) for f in files]
    if not images:
        return torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), names, paths
    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())  # (N, C, H, W)
    return x, torch.as_tensor(labels, dtype=torch.int64), names, paths


def read_image(f: str | Path, mode: str | None, size: tuple[int, int] | None, name: str) -> tuple[np.ndarray, str]:
    """One image file as uint8 ``(H, W, C)`` in PIL ``mode`` (``None``: its own, ``L`` for gray, else
    ``RGB``), resized bilinearly to ``size`` (H, W) when given; returns it and that mode. Errors
    name the set ``name`` and the file: one that cannot be decoded (whatever PIL raises), one of more
    pixels than :data:`soseleto.data.validate.MAX_IMAGE_PIXELS` (a decompression bomb: refused
    from its header, before decoding) and, without ``size``, one wider or taller than
    :data:`soseleto.data.validate.MAX_SIDE`."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                check_pixels(im.size, f, name, resized=size is not None)
                mode = mode or ("L" if im.mode in ("1", "L", "I", "I;16") else "RGB")
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
    except ValueError as err:
        if str(err).startswith(repr(name)):
            raise
        raise ValueError(f"{name!r}: cannot read image {str(f)!r} ({err})") from err
    except Exception as err:  # (a damaged file makes PIL raise many types: all mean "unreadable")
        raise ValueError(f"{name!r}: cannot read image {str(f)!r} ({type(err).__name__}: {err})") from err
    return (arr[..., None] if arr.ndim == 2 else arr), mode


def check_pixels(wh: tuple[int, int], f: str | Path, name: str, *, resized: bool) -> None:
    """Refuse, from its header, an image too large to decode, or (not ``resized``) to train on."""
    w, h = wh
    if w * h > validate.MAX_IMAGE_PIXELS:
        raise ValueError(f"{name!r}: image {str(f)!r} declares {w}x{h} = {w * h:,} pixels, more than the "
                         f"{validate.MAX_IMAGE_PIXELS:,} soseleto decodes (a decompression bomb?)")
    if not resized and max(w, h) > validate.MAX_SIDE:
        raise ValueError(f"{name!r}: image {str(f)!r} is {w}x{h} pixels, wider or taller than the "
                         f"{validate.MAX_SIDE} a network here trains on; give a size (fit: --size HxW)")


def _check_link(f: Path, root: Path, name: str) -> None:
    """Refuse a symbolic link that loops, points nowhere, or points back to a folder above it."""
    if not f.is_symlink():
        return
    try:
        real = f.resolve(strict=True)
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{name!r}: {str(f)!r} is a symbolic link that loops or points nowhere ({err}); "
                         "remove it or point it at an image") from None
    if real.is_dir() and (real == root.resolve() or real in f.parent.resolve().parents or real == f.parent.resolve()):
        raise ValueError(f"{name!r}: {str(f)!r} is a symbolic link loop: it points back to {str(real)!r}, a folder "
                         "above it; remove it")


def read_npz_images(path: str | Path, *, name: str | None = None) -> torch.Tensor:
    """The images ``x`` of an ``.npz`` that need not have labels (``soseleto predict``): uint8
    ``(N, C, H, W)`` by the rules of :func:`read_npz`; any ``y`` is left unchecked."""
    path = Path(path)
    name = name or str(path)
    if "x" not in (found := validate.inspect_npz(path, name)):
        raise ValueError(f"{name!r}: missing array 'x'; found {sorted(found)} (need x: (N, H, W[, C]) uint8)")
    return array_images(validate.load_npz(path, name, keys=("x",), per_pixel="x")["x"], name)


def array_images(x: np.ndarray, name: str) -> torch.Tensor:
    """Pixels laid out as an ``.npz``'s ``x``, ``(N, H, W)`` or ``(N, H, W, C)`` (values: see the
    module docstring) -> uint8 ``(N, C, H, W)``; ``ValueError`` naming ``name`` otherwise."""
    x = _pixels(np.asarray(x), name)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise ValueError(f"{name!r}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C = 1 or 3")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (N, C, H, W)
