"""Image sets larger than memory: an ImageFolder decoded on the fly by DataLoader workers.

:class:`StreamedImages` stands where the training loop takes an in-memory
:class:`soseleto.core.loop.Labeled` source. Only the labels ``y`` ``(N,)`` and the file paths stay
in memory; the loop hands it the index batches it drew (the same ``randperm`` as for a tensor
source), and it yields those images, decoded by worker processes into pinned memory, moved to the
device and standardised there. Alpha stays indexed by sample, and a run draws, and resumes with,
exactly the batches of the in-memory path: a streamed run equals an in-memory one for the same seed.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from soseleto.data import files
from soseleto.data.images import to_float


@dataclass(frozen=True)
class LazyFiles:
    """How a streamed set's files become images: PIL ``mode``, the ``size`` (H, W) they are
    resized to (``None``: as stored) and the resulting ``shape`` (C, H, W)."""

    mode: str
    size: tuple[int, int] | None
    shape: tuple[int, int, int]

    @classmethod
    def probe(cls, first: str, *, mode: str | None = None, size: tuple[int, int] | None = None,
              name: str | None = None) -> LazyFiles:
        """The decoding of a set whose first image file is ``first``: ``mode`` (``None``: gray when that
        image is gray, else RGB: the rule of ``read_folder``), ``size``, and the shape it gives.
        ``name``: the set, for errors (default: the file)."""
        arr, mode = files.read_image(first, mode, size, name or first)
        return cls(mode, size, (arr.shape[2], arr.shape[0], arr.shape[1]))


def folder_index(root: str | Path, *, name: str | None = None) -> tuple[list[str], torch.Tensor, list[str]]:
    """ImageFolder ``root/<class>/<image>`` as streaming needs it, without reading images: ``(paths as
    strings, labels (N,) tensor, class names)``, in the order of :func:`soseleto.data.files.read_folder` (sorted classes, sorted files)."""
    found, labels, names = files.list_folder(root, name=name)
    if not found:
        raise ValueError(f"{name or str(root)!r} holds no images ({', '.join(files.IMAGE_SUFFIXES)})")
    return [str(f) for f in found], torch.as_tensor(labels, dtype=torch.int64), names


def check_headers(paths: Sequence[str], lazy: LazyFiles, *, name: str) -> None:
    """Read the header of every file (not its pixels, about 20 us a file) and refuse, naming it, one
    that is no image, one too large to decode, or (without a size) one of another size than the
    set's: before training, not when an epoch reaches it."""
    from PIL import Image

    for f in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(f) as im:
                    w, h = im.size
        except Exception:  # decoding it names the error
            files.read_image(f, lazy.mode, lazy.size, name)
            raise
        files.check_pixels((w, h), f, name, resized=lazy.size is not None)
        if lazy.size is None and (h, w) != lazy.shape[1:]:
            raise ValueError(f"{name!r}: image {f!r} is {h}x{w} pixels (H x W), the set's first image "
                             f"{paths[0]!r} {lazy.shape[1]}x{lazy.shape[2]}; give a size (fit: --size HxW) "
                             "to resize them all")


def decode(path: str, *, mode: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """One image file -> uint8 ``(C, H, W)`` in PIL ``mode`` (``"L"`` or ``"RGB"``), resized
    bilinearly to ``size`` (H, W) when given (as :func:`soseleto.data.files.read_folder` does)."""
    arr, _ = files.read_image(path, mode, size, path)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # (C, H, W)


def sample(paths: Sequence[str], *, mode: str, size: tuple[int, int] | None = None, limit: int = 2048,
           seed: int = 0) -> torch.Tensor:
    """uint8 ``(n, C, H, W)``: every image when there are at most ``limit`` (in order, so their
    statistics equal those of the in-memory set), else ``limit`` random ones (drawn with ``seed``)."""
    pick = range(len(paths))
    if len(paths) > limit:
        pick = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:limit].sort().values.tolist()
    images = [decode(paths[i], mode=mode, size=size) for i in pick]
    for i, img in zip(pick, images):
        if img.shape != images[0].shape:
            raise ValueError(f"image {paths[i]!r} has shape {tuple(img.shape)} (C, H, W), {paths[pick[0]]!r} has "
                             f"{tuple(images[0].shape)}; give a size (fit: --size HxW) to resize them all")
    return torch.stack(images)


def files_fingerprint(paths: Sequence[str], y: torch.Tensor) -> str:
    """SHA-256 of the files' names, sizes and modification times and of the labels: changes when
    the set does, without reading every image."""
    h = hashlib.sha256()
    for f in paths:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    h.update(y.cpu().numpy().tobytes())
    return h.hexdigest()


class _Files(torch.utils.data.Dataset):
    """Index -> uint8 ``(C, H, W)``; checks every image against the set's shape."""

    def __init__(self, paths: Sequence[str], lazy: LazyFiles):
        self.paths, self.lazy = paths, lazy

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = decode(self.paths[i], mode=self.lazy.mode, size=self.lazy.size)
        if tuple(img.shape) != self.lazy.shape:
            raise ValueError(f"image {self.paths[i]!r} has shape {tuple(img.shape)} (C, H, W), the set has "
                             f"{self.lazy.shape}; give a size (fit: --size HxW) to resize them all")
        return img


class StreamedImages:
    """An image set read from files batch by batch.

    Parameters
    ----------
    paths, y
        One image file per sample and its label, ``y`` int64 ``(N,)``.
    mean, std
        Per-channel standardisation ``(C,)`` on the [0, 1] scale (as :func:`soseleto.data.images.to_float`).
    size
        (H, W) to resize every image to while decoding; ``None`` keeps the files' size (all equal).
    workers
        DataLoader worker processes that decode (0: in the main process).
    """

    def __init__(self, paths: Sequence[str], y: torch.Tensor, *, mean: torch.Tensor, std: torch.Tensor,
                 size: tuple[int, int] | None = None, workers: int = 2, device: torch.device | str = "cpu",
                 mode: str | None = None) -> None:
        if len(paths) != len(y):
            raise ValueError(f"{len(paths)} image paths but {len(y)} labels")
        if len(y) == 0:
            raise ValueError("data set is empty")
        if workers < 0:
            raise ValueError(f"workers={workers} is invalid; give 0 (decode in this process) or more")
        self.paths, self.y = list(paths), y
        self.lazy = LazyFiles.probe(self.paths[0], mode=mode, size=size)
        self.workers, self.device = workers, torch.device(device)
        self.mean, self.std = mean.to(self.device), std.to(self.device)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return self.lazy.shape

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> StreamedImages:
        """The same files, delivered to ``device`` (nothing is moved: only labels live in memory)."""
        out = copy.copy(self)
        out.device = torch.device(device)
        out.y, out.mean, out.std = self.y.to(out.device), self.mean.to(out.device), self.std.to(out.device)
        return out

    def batches(self, chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The float images ``(B, C, H, W)`` of each index batch in ``chunks``, in order, on the device."""
        if not chunks:
            return iter(())
        order = [c.tolist() for c in chunks]
        loader = torch.utils.data.DataLoader(
            _Files(self.paths, self.lazy), batch_sampler=order, num_workers=self.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        # uint8 crosses to the device (a quarter of float32's bytes) and is standardised there
        return (to_float(x.to(self.device, non_blocking=True), mean=self.mean, std=self.std) for x in _named(loader))


def _named(loader: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """``loader``'s batches; a worker's ``ValueError`` (an image that cannot be decoded) is raised
    again with its own one-line message, which names the file, without the worker's traceback."""
    it = iter(loader)
    while True:
        try:
            x = next(it)
        except StopIteration:
            return
        except ValueError as err:
            lines = [line for line in str(err).splitlines() if line.strip()]
            if len(lines) < 2 or "DataLoader worker" not in lines[0]:
                raise
            raise ValueError(lines[-1].removeprefix("ValueError: ")) from None
        yield x
