"""Labelled image sets as uint8 tensors: torchvision sets, generated stand-ins, the user's files.

Everything here returns ``uint8`` images ``(N, C, H, W)`` with ``int64`` labels ``(N,)``; the
conversion to normalised float happens once (:func:`soseleto.data.images.to_float`). The sets fit
in memory, so they are kept whole as tensors and batched with ``randperm`` (no DataLoader).

A *data set* in the config is a torchvision name (:data:`DATASETS`), a set shipped with the
package (``mnist5k``, ``digits8x8``: :mod:`soseleto.data.builtin`), or the path of an ``.npz`` file or an
ImageFolder (:mod:`soseleto.data.files`); the last three have no test split of their own.
``data.source: generated`` replaces every torchvision set by a small generated one of the same
shape and class count (:func:`generated`), so the whole workflow runs without downloads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from soseleto.config import DataConfig
from soseleto.config.datasets import CATALOG, SetInfo
from soseleto.core.rng import generator
from soseleto.data import builtin, files, integrity

log = logging.getLogger(__name__)


DATASETS = CATALOG  # the torchvision sets (soseleto/config/datasets.py)


def is_named(dataset: str) -> bool:
    """Whether ``dataset`` is a torchvision set of :data:`DATASETS` (else a file or folder path)."""
    return dataset.lower() in DATASETS


def has_test_split(dataset: str) -> bool:
    """torchvision sets have one; an ``.npz`` file or an ImageFolder does not."""
    return is_named(dataset)


def n_classes(dataset: str, y: torch.Tensor) -> int:
    """Classes of ``dataset``: the registry's count, or ``max(y) + 1`` for a file."""
    return DATASETS[dataset.lower()].n_classes if is_named(dataset) else int(y.max()) + 1


def load_labelled(dataset: str, split: str, data: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``split`` (``train`` or ``test``) of ``dataset`` as configured by ``data``: a torchvision
    set (or its generated stand-in), or a file, whose only split is ``train`` (all of it)."""
    if is_named(dataset):
        name = dataset.lower()
        if data.source == "generated":
            return generated(name, split, data.generated_train if split == "train" else data.generated_test, seed=0)
        return load_torchvision(name, split, data.dir, download=data.download)
    if split != "train":
        raise ValueError(f"data set {dataset!r} is a file and has no {split!r} split; hold one out of it instead")
    path = Path(builtin.resolve(dataset))
    if path.is_dir():
        x, y, _, _ = files.read_folder(path)
        return x, y
    if not path.is_file():
        raise FileNotFoundError(f"data set {dataset!r}: no such file or folder, and not one of "
                                f"{sorted(DATASETS) + sorted(builtin.BUILTIN)}")
    return files.read_npz(path)


def load_torchvision(name: str, split: str, data_dir: str | Path, *, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole torchvision data set as ``(x uint8 (N, C, H, W), y int64 (N,))``.

    Files are looked up in ``data_dir`` (torchvision's layout: see ``DATASETS[name].files``) and
    downloaded there when ``download`` is true; MNIST-like archives already there are extracted
    instead (:func:`soseleto.data.integrity.extract_archives`). With download off, missing files
    raise ``FileNotFoundError`` naming every expected path. Present files are checked first
    (:func:`soseleto.data.integrity.check_files`: torchvision's md5 sums, or the decoded content of
    a recompressed MNIST-like archive, the idx format); a mismatch, an unreadable file or a failed
    download raise ``ValueError`` saying what to do. A failed download removes the folders it created.
    """
    info = _info(name)
    if split not in info.files:
        raise ValueError(f"split={split!r} is invalid for {name}; choose one of {sorted(info.files)}")
    root = Path(data_dir)
    integrity.extract_archives(name, info.loader, root)  # archives already there: no download needed
    missing = [str(root / f) for f in info.files[split] if not (root / f).exists()]
    if missing and not download:
        raise FileNotFoundError(
            f"{name} ({split}) not found in data_dir={str(root)!r}: missing {', '.join(missing)}. "
            "Set data.download: true (soseleto fit: --download; needs internet), place the files there by "
            "hand, or run the workflow on generated stand-ins with --configfile config/smoke.yaml."
        )
    integrity.check_files(name, info.loader, split, root, info.files[split])
    download = download and bool(missing)  # present files: skip torchvision's second checksum pass
    created = integrity.created_folders(root, info.files[split]) if download else []
    root.mkdir(parents=True, exist_ok=True)
    try:
        x, y = _read_torchvision(name, info.loader, split, root, download=download)
    except (RuntimeError, OSError, ValueError, EOFError, KeyError) as err:  # torchvision's "not found or corrupted"
        if download and any(not (root / f).exists() for f in info.files[split]):
            integrity.remove_folders(created)
            raise ValueError(f"{name} ({split}) could not be downloaded into data_dir={str(root)!r} "
                             f"({_first_line(err)}). "
                             + integrity.download_help(name, info.loader, split, root, info.files[split])) from err
        raise ValueError(f"{name} ({split}) in data_dir={str(root)!r} could not be read: {err}") from err
    return x, y


def _read_torchvision(name: str, loader: str, split: str, root: Path, *, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    cls = getattr(tvd, loader)
    if name == "svhn":
        ds = cls(str(root), split=split, download=download)
        x, y = torch.from_numpy(np.asarray(ds.data)), torch.as_tensor(ds.labels)
    elif name.startswith("cifar"):
        ds = cls(str(root), train=split == "train", download=download)
        x, y = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)
    else:
        ds = cls(str(root), train=split == "train", download=download)
        x, y = ds.data.unsqueeze(1), ds.targets
    return x.contiguous().to(torch.uint8), y.to(torch.int64)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(":") if text else type(err).__name__


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


def manifest(dataset: str, data: DataConfig) -> dict:
    """Load (downloading if configured) every split of ``dataset``; return sizes and class counts."""
    splits = tuple(_info(dataset.lower()).files) if is_named(dataset) else ("train",)
    out: dict = {"dataset": dataset, "source": data.source if is_named(dataset) else "file"}
    for split in splits:
        x, y = load_labelled(dataset, split, data)
        out["shape"] = list(x.shape[1:])
        out[split] = {"n": len(y), "class_counts": torch.bincount(y, minlength=n_classes(dataset, y)).tolist()}
    return out


def _info(name: str) -> SetInfo:
    if name not in DATASETS:
        raise ValueError(f"data set {name!r} is unknown; choose one of {sorted(DATASETS)}")
    return DATASETS[name]
