"""Image data sets as device-ready tensors: torchvision sets, generated stand-ins, splits.

Everything here returns ``uint8`` images ``(N, C, H, W)`` with ``int64`` labels ``(N,)``; the
conversion to normalised float happens once, in :func:`to_float`. The data sets of the paper
(CIFAR-10, SVHN, MNIST) fit in memory, so they are kept whole as tensors and batched with
``randperm`` by the trainer (no DataLoader workers).

``source: generated`` in the config replaces every torchvision set by a small generated one of the
same shape and class count (:func:`generated`), so the whole workflow runs without downloads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from soseleto.rng import generator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetInfo:
    shape: tuple[int, int, int]  # (C, H, W)
    n_classes: int
    files: dict[str, tuple[str, ...]]  # split -> files expected under data_dir


DATASETS: dict[str, SetInfo] = {
    "cifar10": SetInfo(
        (3, 32, 32), 10,
        {
            "train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
            "test": ("cifar-10-batches-py/test_batch",),
        },
    ),
    "svhn": SetInfo((3, 32, 32), 10, {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}),
    "mnist": SetInfo(
        (1, 28, 28), 10,
        {
            "train": ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte"),
            "test": ("MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"),
        },
    ),
}


def load_torchvision(name: str, split: str, data_dir: str | Path, *, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole torchvision data set as ``(x uint8 (N, C, H, W), y int64 (N,))``.

    Files are looked up in ``data_dir`` (torchvision's layout: see ``DATASETS[name].files``) and
    downloaded there when ``download`` is true. With download off, missing files raise
    ``FileNotFoundError`` naming every expected path; unreadable ones raise ``ValueError``.
    """
    info = _info(name)
    if split not in info.files:
        raise ValueError(f"split={split!r} is invalid for {name}; choose one of {sorted(info.files)}")
    root = Path(data_dir)
    missing = [str(root / f) for f in info.files[split] if not (root / f).exists()]
    if missing and not download:
        raise FileNotFoundError(
            f"{name} ({split}) not found in data_dir={str(root)!r}: missing {', '.join(missing)}. "
            "Set download: true (needs internet) or place the files there by hand."
        )
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    download = download and bool(missing)  # present files: skip torchvision's second checksum pass
    try:
        if name == "cifar10":
            ds = tvd.CIFAR10(str(root), train=split == "train", download=download)
            x, y = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)
        elif name == "svhn":
            ds = tvd.SVHN(str(root), split=split, download=download)
            x, y = torch.from_numpy(np.asarray(ds.data)), torch.as_tensor(ds.labels)
        else:
            ds = tvd.MNIST(str(root), train=split == "train", download=download)
            x, y = ds.data.unsqueeze(1), ds.targets
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as err:  # torchvision's "not found or corrupted"
        raise ValueError(f"{name} ({split}) in data_dir={str(root)!r} could not be read: {err}") from err
    return x.contiguous().to(torch.uint8), y.to(torch.int64)


def generated(name: str, split: str, n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable stand-in for data set ``name``: same image shape and class count, ``n`` images.

    Each class has a fixed random template (drawn from the data set name, so train and test
    share it); an image is its class template (shifted by a per-draw jitter) plus pixel noise. Different
    ``split`` values give disjoint draws.
    """
    info = _info(name)
    c, h, w = info.shape
    tg = generator(sum(map(ord, name)))
    templates = torch.rand(info.n_classes, c, h // 4, w // 4, generator=tg)
    templates = F.interpolate(templates, size=(h, w), mode="bilinear", align_corners=False)  # smooth patterns
    g = generator(seed * 7919 + {"train": 0, "test": 1}.get(split, 2))
    y = torch.randint(0, info.n_classes, (n,), generator=g)
    x = templates[y]
    shift = torch.randint(-2, 3, (2,), generator=g)  # one jitter per draw: train and test differ slightly
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    x = (0.6 * x + 0.4 * torch.rand(n, c, h, w, generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8), y


def load(name: str, split: str, *, source: str, data_dir: str | Path = "data", download: bool = False,
         generated_size: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on ``source``: ``torchvision`` (real data) or ``generated`` (stand-in, no download)."""
    if source == "torchvision":
        return load_torchvision(name, split, data_dir, download=download)
    if source == "generated":
        return generated(name, split, generated_size, seed=seed)
    raise ValueError(f"data source={source!r} is invalid; choose 'torchvision' or 'generated'")


def load_configured(name: str, split: str, data_cfg: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`load` as configured by the workflow's ``data:`` section (``source``, ``dir``,
    ``download``, ``generated_train``/``generated_test``)."""
    return load(
        name, split, source=data_cfg["source"], data_dir=data_cfg.get("dir", "data"),
        download=bool(data_cfg.get("download", False)),
        generated_size=int(data_cfg.get("generated_train" if split == "train" else "generated_test", 2000)),
    )


def manifest(name: str, data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Load (downloading if configured) both splits of ``name``; return their sizes and class counts."""
    out: dict[str, Any] = {"name": name, "source": data_cfg["source"], "shape": list(_info(name).shape)}
    for split in _info(name).files:
        x, y = load_configured(name, split, data_cfg)
        out[split] = {"n": len(y), "class_counts": torch.bincount(y, minlength=_info(name).n_classes).tolist()}
    return out


def to_float(x: torch.Tensor, *, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 in [0, 1], then per-channel standardised when given."""
    out = x.float().div_(255.0)
    if mean is not None:
        out = (out - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return out


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std ``(C,)`` of uint8 images, on the [0, 1] scale."""
    f = x.float().div_(255.0)
    return f.mean(dim=(0, 2, 3)), f.std(dim=(0, 2, 3)).clamp_min(1e-6)


def to_gray_resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, 1, *size)``: luminance, then bilinear resize
    (SVHN 32x32 RGB -> MNIST-like 28x28 gray, section 4.3)."""
    f = x.float()
    if f.shape[1] == 3:
        f = (f * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    f = F.interpolate(f, size=size, mode="bilinear", align_corners=False, antialias=True)
    return f.round().clamp(0, 255).to(torch.uint8)


def class_balanced_indices(y: torch.Tensor, per_class: int, *, seed: int, classes: list[int] | None = None) -> torch.Tensor:
    """``per_class`` random indices of each class in ``classes`` (default: all present), sorted.

    Raises ``ValueError`` naming the class when it has fewer than ``per_class`` samples.
    """
    g = generator(seed)
    classes = sorted(torch.unique(y).tolist()) if classes is None else list(classes)
    picks = []
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} samples, fewer than per_class={per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(picks).sort().values


def subset_classes(x: torch.Tensor, y: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep only samples whose label is in ``classes``; returns ``(x, y, original_indices)``."""
    keep = torch.isin(y, torch.as_tensor(classes))
    idx = torch.nonzero(keep).flatten()
    return x[idx], y[idx], idx


def remap_labels(y: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Map labels ``classes[k] -> k`` (e.g. MNIST 5..9 -> 0..4)."""
    lut = torch.full((int(max(classes)) + 1,), -1, dtype=torch.int64)
    lut[torch.as_tensor(classes)] = torch.arange(len(classes))
    out = lut[y]
    if (out < 0).any():
        raise ValueError(f"labels outside classes={classes}")
    return out


def _info(name: str) -> SetInfo:
    if name not in DATASETS:
        raise ValueError(f"data set {name!r} is unknown; choose one of {sorted(DATASETS)}")
    return DATASETS[name]
