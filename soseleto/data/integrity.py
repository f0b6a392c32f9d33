"""Checks of torchvision data files before they are read, and what a failed download leaves.

* CIFAR-10/100 batches and SVHN ``.mat`` files are checked against torchvision's own md5 sums
  (its ``train_list``/``test_list``/``split_list``).
* MNIST-like archives (``*.gz`` in ``raw/``) are accepted when their md5 is torchvision's
  (``resources``) or, failing that, when what they decode to is right: an archive recompressed by
  someone else (a Linux distribution's package, say) holds the same idx file in other gzip
  bytes. Decoded and extracted idx files are checked by their header (magic number, sample
  count, image size), their byte size and, where it is known, the SHA-256 of their content
  (:data:`DECODED_SHA256`). torchvision publishes only the archives' md5s, so for the real sets
  no content checksum is known here and header and size are what is checked. An archive whose
  idx file is not extracted yet is extracted next to it (no download needed). A mismatch raises
  ``ValueError`` naming the file and what was expected.
* :func:`download_help` says how to get a set without internet; :func:`created_folders` and
  :func:`remove_folders` let a failed download remove the folders it made (and only those).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

# samples per split of the MNIST-like sets (MNIST, Fashion-MNIST, KMNIST)
IDX_COUNTS = {"train": 60000, "test": 10000}
# idx file (relative to the data folder, e.g. "MNIST/raw/t10k-labels-idx1-ubyte") -> SHA-256 of its
# content, where known; checked for extracted files and for what a recompressed archive decodes to
DECODED_SHA256: dict[str, str] = {}


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
    checksum (MNIST-like archives: nor decode to the right idx file; extracted idx files: their
    format, size and known checksum); absent files are skipped."""
    for rel, md5 in expected_md5(loader, split).items():
        path = root / rel
        if not path.is_file() or (got := md5sum(path)) == md5:
            continue
        if path.suffix != ".gz":
            raise ValueError(f"{name} ({split}): {str(path)!r} has md5 {got}, but torchvision expects {md5}: the "
                             "file is damaged, truncated or of another data set; delete it and download it again "
                             "(data.download: true, or --download) or put the right file there")
        problem = _idx_problem(split, rel.removesuffix(".gz"), lambda: gzip.open(path, "rb"))
        if problem:
            raise ValueError(f"{name} ({split}): {str(path)!r} has md5 {got}, but torchvision expects {md5}, and "
                             f"what it decodes to is not the expected idx file ({problem}): damaged, truncated or of "
                             "another data set; delete it and download it again (data.download: true, or --download) "
                             "or put the right file there")
        log.info("%s (%s): %s is another compression of the expected idx file (md5 %s, not torchvision's %s; "
                 "its decoded header and size%s are right): accepted", name, split, path, got, md5,
                 " and checksum" if rel.removesuffix(".gz") in DECODED_SHA256 else "")
    for rel in files:
        path = root / rel
        if path.is_file() and "-idx" in path.name:
            problem = _idx_problem(split, rel, lambda: open(path, "rb"))
            if problem:
                raise ValueError(f"{name} ({split}) could not be read: {str(path)!r} is not the expected idx file "
                                 f"({problem}): damaged or truncated; delete it and download it again "
                                 "(data.download: true, or --download) or put the right file there")


def extract_archives(name: str, loader: str, root: Path) -> list[Path]:
    """Extract each MNIST-like archive of ``name`` under ``root`` whose idx file is missing, after
    checking it (:func:`check_files`), as torchvision's download would but from the archive already
    there; every split, since torchvision reads a split only when all four idx files are there.
    Returns the files written; other sets: nothing to do."""
    written = []
    for split in IDX_COUNTS:
        archives = [rel for rel in expected_md5(loader, split) if rel.endswith(".gz")]
        todo = [rel for rel in archives if (root / rel).is_file() and not (root / rel.removesuffix(".gz")).exists()]
        if todo:
            check_files(name, loader, split, root, ())
        for rel in todo:
            out = root / rel.removesuffix(".gz")
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                with gzip.open(root / rel, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            log.info("%s (%s): extracted %s from %s", name, split, out, root / rel)
            written.append(out)
    return written


def _idx_problem(split: str, rel: str, opener) -> str | None:
    """What is wrong with the idx file ``rel`` of ``split`` read through ``opener()`` (a binary
    stream: the file or its decoding archive), or ``None``: magic number, sample count, image
    size, byte size and, when :data:`DECODED_SHA256` knows it, the SHA-256 of the content."""
    images = "-images-" in rel
    n, magic, header = IDX_COUNTS[split], (2051 if images else 2049), (16 if images else 8)
    want = (magic, n, (28, 28) if images else (), header + n * (28 * 28 if images else 1))
    sha = DECODED_SHA256.get(rel)
    try:
        with opener() as f:
            got_head, size, digest = _read_idx(f, header, hashed=sha is not None)
    except (OSError, EOFError, zlib.error) as err:  # not gzip, truncated stream
        return f"it cannot be decoded: {err}"
    magic_n = struct.unpack(">II", got_head[:8]) if len(got_head) >= 8 else (None, None)
    dims = struct.unpack(">II", got_head[8:16]) if images and len(got_head) >= 16 else ()
    got = (*magic_n, dims, size)
    if got != want:
        return f"{_describe(*got)}; expected {_describe(*want)}"
    if sha is not None and digest != sha:
        return f"content SHA-256 {digest}; expected {sha}"
    return None


def _describe(magic, n, dims, size) -> str:
    return f"magic number {magic}, {n} samples" + (f" of {dims[0]}x{dims[1]}" if dims else "") + f", {size} bytes"


def _read_idx(f: BinaryIO, header: int, *, hashed: bool) -> tuple[bytes, int, str | None]:
    """The first ``header`` bytes of stream ``f``, its length and (``hashed``) its SHA-256, read
    in chunks; a plain file's length comes from its size unless it is hashed."""
    head = f.read(header)
    if not hashed and hasattr(f, "fileno") and not isinstance(f, gzip.GzipFile):
        return head, os.fstat(f.fileno()).st_size, None
    h = hashlib.sha256(head) if hashed else None
    size = len(head)
    while block := f.read(1 << 20):
        size += len(block)
        if h is not None:
            h.update(block)
    return head, size, h.hexdigest() if h is not None else None


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
