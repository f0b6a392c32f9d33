"""Image sets larger than memory: an ImageFolder decoded on the fly by DataLoader workers.

:class:`StreamedImages` stands where the training loop takes an in-memory
:class:`soseleto.core.loop.Labeled` source. Only the labels ``y`` ``(N,)`` and the file paths stay
in memory; the loop hands it the index batches it drew (the same ``randperm`` as for a tensor
source), and it yields those images, decoded by worker processes into pinned memory, moved to the
device and standardised there. Alpha stays indexed by sample, and a run draws, and resumes with,
exactly the batches of the in-memory path: a streamed run equals an in-memory one for the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from soseleto.data.files import IMAGE_SUFFIXES


def list_folder(root: str | Path) -> tuple[list[str], torch.Tensor, list[str]]:
    """ImageFolder ``root/<class>/<image>`` without reading images: ``(paths, labels (N,), class names)``,
    in the order of :func:`soseleto.data.files.read_folder` (sorted classes, sorted files)."""
    root = Path(root)
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise ValueError(f"{str(root)!r} has no class sub-folders (ImageFolder layout: ROOT/CLASS/image.png)")
    paths: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(names):
        found = sorted(str(f) for f in (root / cls).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        paths += found
        labels += [label] * len(found)
    if not paths:
        raise ValueError(f"{str(root)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths, torch.as_tensor(labels, dtype=torch.int64), names


def decode(path: str, *, mode: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """One image file -> uint8 ``(C, H, W)`` in PIL ``mode`` (``"L"`` or ``"RGB"``), resized
    bilinearly to ``size`` (H, W) when given (as :func:`soseleto.data.files.read_folder` does)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None:
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read image {path!r} ({err})") from err
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())  # (C, H, W)


def image_mode(path: str) -> str:
    """``"L"`` for a gray image file, ``"RGB"`` otherwise (the rule of ``read_folder``)."""
    from PIL import Image

    with Image.open(path) as im:
        return "L" if im.mode in ("1", "L", "I", "I;16") else "RGB"


class _Files(torch.utils.data.Dataset):
    """Index -> uint8 ``(C, H, W)``; checks every image against the first one's shape."""

    def __init__(self, paths: Sequence[str], mode: str, size: tuple[int, int] | None, shape: tuple[int, ...]):
        self.paths, self.mode, self.size, self.shape = paths, mode, size, shape

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = decode(self.paths[i], mode=self.mode, size=self.size)
        if tuple(img.shape) != self.shape:
            raise ValueError(f"image {self.paths[i]!r} has shape {tuple(img.shape)} (C, H, W), the set has "
                             f"{self.shape}; give a size (fit: --size HxW) to resize them all")
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
        self.paths, self.y = list(paths), y
        self.mode = mode or image_mode(self.paths[0])
        self.size, self.workers, self.device = size, workers, torch.device(device)
        self.mean, self.std = mean.to(self.device), std.to(self.device)
        self.shape = tuple(decode(self.paths[0], mode=self.mode, size=size).shape)  # (C, H, W)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: torch.device | str) -> StreamedImages:
        """The same files, delivered to ``device`` (nothing is moved: only labels live in memory)."""
        out = object.__new__(StreamedImages)
        out.__dict__.update(self.__dict__)
        out.device = torch.device(device)
        out.y, out.mean, out.std = self.y.to(out.device), self.mean.to(out.device), self.std.to(out.device)
        return out

    def batches(self, chunks: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The float images ``(B, C, H, W)`` of each index batch in ``chunks``, in order, on the device."""
        if not chunks:
            return iter(())
        order = [c.tolist() for c in chunks]
        loader = torch.utils.data.DataLoader(
            _Files(self.paths, self.mode, self.size, self.shape), batch_sampler=order, num_workers=self.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )
        return (self._standardise(x) for x in loader)

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255.0)  # (B, C, H, W)
        return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
