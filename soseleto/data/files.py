"""Image sets stored as files: an ``.npz`` of arrays ``x``/``y`` or an ImageFolder directory.

Both readers return uint8 ``(N, C, H, W)`` images and int64 ``(N,)`` labels and raise
``ValueError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_npz(path: str | Path, *, name: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrays ``x`` ``(N, H, W)`` or ``(N, H, W, C)`` uint8 and ``y`` ``(N,)`` non-negative integers."""
    path = Path(path)
    name = name or str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{name!r}: not a readable .npz file ({err})") from err
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(f"{name!r}: missing array(s) {missing}; found {sorted(arrays)} (need x: (N, H, W[, C]) uint8, y: (N,) int)")
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8:
        raise ValueError(f"{name!r}: x has dtype {x.dtype}; expected uint8 pixel values 0..255")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise ValueError(f"{name!r}: x has shape {x.shape}; expected (N, H, W) or (N, H, W, C) with C = 1 or 3")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{name!r}: y has shape {y.shape} but x has {x.shape[0]} images; expected y of shape ({x.shape[0]},)")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{name!r}: y has dtype {y.dtype} and non-integer values; expected integer labels")
    if y.size and y.min() < 0:
        raise ValueError(f"{name!r}: y has a negative label {int(y.min())}; labels must be 0, 1, ...")
    x_t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (N, C, H, W)
    return x_t, torch.from_numpy(y.astype(np.int64))


def read_folder(root: str | Path, *, size: tuple[int, int] | None = None, name: str | None = None):
    """ImageFolder ``root/<class>/<image>``: ``(x, y, class names, image paths)``; classes in sorted
    order; gray when the first image is gray, RGB otherwise; ``size`` (H, W) resizes while reading."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    name = name or str(root)
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise ValueError(f"{name!r}: {str(root)!r} has no class sub-folders (ImageFolder layout: ROOT/CLASS/image.png)")
    images, labels, paths = [], [], []
    mode = None  # of the first image: all gray -> (1, H, W), otherwise RGB
    for label, name in enumerate(names):
        for f in sorted((root / name).rglob("*")):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    mode = mode or ("L" if im.mode in ("1", "L", "I", "I;16") else "RGB")
                    im = im.convert(mode)
                    if size is not None:
                        im = im.resize((size[1], size[0]), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (OSError, UnidentifiedImageError) as err:
                raise ValueError(f"{name!r}: cannot read image {str(f)!r} ({err})") from err
            arr = arr[..., None] if arr.ndim == 2 else arr
            if images and arr.shape != images[0].shape:
                raise ValueError(
                    f"{name!r}: image {str(f)!r} has shape {arr.shape}, {paths[0]!r} has {images[0].shape} "
                    "(H, W, C); use --size HxW to resize them all"
                )
            images.append(arr), labels.append(label), paths.append(str(f))
    if not images:
        return torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), names, paths
    x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy())  # (N, C, H, W)
    return x, torch.as_tensor(labels, dtype=torch.int64), names, paths
