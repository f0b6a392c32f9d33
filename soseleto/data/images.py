"""Image tensors and label indices: conversion to normalised float, gray/resize, class-balanced
draws, class subsets. Images are uint8 ``(N, C, H, W)``; labels int64 ``(N,)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from soseleto.core.rng import generator


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


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images ``(N, C, H, W)`` (uint8, or float on the 0-255 scale) -> uint8 ``(N, C, *size)``,
    bilinear with antialiasing."""
    f = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    return f.round().clamp(0, 255).to(torch.uint8)


def to_gray_resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, 1, *size)``: luminance, then bilinear resize
    (SVHN 32x32 RGB -> MNIST-like 28x28 gray, section 4.3)."""
    f = x.float()
    if f.shape[1] == 3:
        f = (f * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return resize(f, size)


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


def class_rows(y: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """The rows ``(M,)`` of the samples whose label ``y`` is in ``classes``, in order."""
    return torch.nonzero(torch.isin(y, torch.as_tensor(classes))).flatten()


def remap_labels(y: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Map labels ``classes[k] -> k`` (e.g. MNIST 5..9 -> 0..4)."""
    lut = torch.full((int(max(classes)) + 1,), -1, dtype=torch.int64)
    lut[torch.as_tensor(classes)] = torch.arange(len(classes))
    out = lut[y]
    if (out < 0).any():
        raise ValueError(f"labels outside classes={classes}")
    return out
