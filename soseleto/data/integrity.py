"""Checks of torchvision data files before they are read, and what a failed download leaves.

* CIFAR-10/100 batches and SVHN ``.mat`` files are checked against torchvision's own md5 sums
  (its ``train_list``/``test_list``/``split_list``); MNIST-like archives (``*.gz`` in ``raw/``)
  against its ``resources`` md5s when they are present. torchvision has no checksums of the
  extracted MNIST-like files, so their idx header (magic number, count, image size) and their
  byte size are checked instead. A mismatch raises ``ValueError`` naming the file and what was
  expected.
* :func:`download_help` says how to get a set without internet; :func:`created_folders` and
  :func:`remove_folders` let a failed download remove the folders it made (and only those).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

# samples per split of the MNIST-like sets (MNIST, Fashion-MNIST, KMNIST)
IDX_COUNTS = {"train": 60000, "test": 10000}


def expected_md5(loader: str, split: str) -> dict[str, str]:
    """File (relative to the data folder) -> torchvision's md5 for the ``split`` of the data set
    read by ``torchvision.datasets.<loader>``; MNIST-like sets: their archives in ``raw/``."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, loader)
    if hasattr(cls, "train_list"):  # CIFAR-10, CIFAR-100
        listed = cls.train_list if split == "train" else cls.test_list
        return {f"{cls.base_folder}/{name}": md5 for name, md5 in listed}
    if hasattr(cls, "split_list"):  # SVHN
        _, name, md5 = cls.split_list[split]
        return {name: md5}
    return {f"{loader}/raw/{name}": md5 for name, md5 in _archives(cls, split)}


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_files(name: str, loader: str, split: str, root: Path, files: tuple[str, ...]) -> None:
    """Refuse a data file of ``name``'s ``split`` under ``root`` that does not match torchvision's
    checksum (or, for extracted MNIST-like files, the idx format and size); absent files are skipped."""
    for rel, md5 in expected_md5(loader, split).items():
        path = root / rel
        if path.is_file() and (got := md5sum(path)) != md5:
            raise ValueError(f"{name} ({split}): {str(path)!r} has md5 {got}, but torchvision expects {md5}: the "
                             "file is damaged, truncated or of another data set; delete it and download it again "
                             "(data.download: true, or --download) or put the right file there")
    for rel in files:
        path = root / rel
        if path.is_file() and "-idx" in path.name:
            _check_idx(name, split, path)


def _check_idx(name: str, split: str, path: Path) -> None:
    """An extracted MNIST-like file: idx magic number, sample count and byte size."""
    images = "-images-" in path.name
    n, magic, header = IDX_COUNTS[split], (2051 if images else 2049), (16 if images else 8)
    size = header + n * (28 * 28 if images else 1)
    with open(path, "rb") as f:
        head = f.read(header)
    got_magic, got_n = struct.unpack(">II", head[:8]) if len(head) >= 8 else (None, None)
    actual = path.stat().st_size
    if (got_magic, got_n, actual) != (magic, n, size):
        raise ValueError(f"{name} ({split}) could not be read: {str(path)!r} is not the expected idx file "
                         f"(magic number {got_magic}, {got_n} samples, {actual} bytes; expected {magic}, {n} "
                         f"samples, {size} bytes): damaged or truncated; delete it and download it again "
                         "(data.download: true, or --download) or put the right file there")


def download_urls(loader: str, split: str) -> list[str]:
    """Where torchvision downloads the ``split`` of ``torchvision.datasets.<loader>`` from."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, loader)
    if hasattr(cls, "url"):
        return [cls.url]
    if hasattr(cls, "split_list"):
        return [cls.split_list[split][0]]
    return [f"{m}{f}" for m in cls.mirrors[:1] for f, _ in _archives(cls, split)]


def _archives(cls: type, split: str) -> list[tuple[str, str]]:
    """``(archive name, md5)`` of the ``split`` of an MNIST-like torchvision class (its ``resources``)."""
    prefix = "train" if split == "train" else "t10k"
    return [(name, md5) for name, md5 in cls.resources if name.startswith(prefix)]


def download_help(name: str, loader: str, split: str, root: Path, files: tuple[str, ...]) -> str:
    """How to get ``name``'s ``split`` into ``root`` without internet (for an error message)."""
    listed = ", ".join(str(root / f) for f in files)
    urls = ", ".join(download_urls(loader, split))
    return (f"To fix this: (1) place the files {listed} there by hand (from {urls}; extracted), then set "
            f"data.download: false (soseleto fit: leave out --download); or (2) run the workflow on generated "
            f"stand-ins of the same shapes with --configfile config/smoke.yaml (no download)")


def created_folders(root: Path, files: tuple[str, ...]) -> list[Path]:
    """The folders a download into ``root`` would create that do not exist yet, deepest first."""
    folders = {root, *root.parents}
    for f in files:
        folders.update(p for p in (root / f).parents if root in p.parents or p == root)
    return sorted((p for p in folders if not p.exists()), key=lambda p: len(p.parts), reverse=True)


def remove_folders(folders: list[Path]) -> None:
    """Remove ``folders`` (those a failed download made: see :func:`created_folders`) and what is in them."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
