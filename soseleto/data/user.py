"""The user's own image sets for ``soseleto fit``: parse a set spec, load it, check it.

A spec names one labelled image set, optionally followed by ``:CLASSES``:

* ``cifar10:train``, ``mnist:test:5,6,7,8,9``, ``svhn:train:0-4`` -- a torchvision data set
  (``NAME:SPLIT[:CLASSES]``, NAME one of :data:`soseleto.data.sets.DATASETS`);
* ``mnist5k[:CLASSES]``, ``digits8x8[:CLASSES]`` -- a set shipped with the package
  (:mod:`soseleto.data.builtin`), read as the ``.npz`` file it is;
* ``path/to/file.npz[:CLASSES]`` -- arrays ``x`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` and ``y``
  integer ``(N,)`` (float pixels in [0, 1] or [0, 255] are accepted: :mod:`soseleto.data.files`);
* ``path/to/folder[:CLASSES]`` -- torchvision's ImageFolder layout, one sub-folder per class
  (sorted names -> labels 0, 1, ...); gray when the first image is gray, RGB otherwise.

``CLASSES`` (comma-separated labels, ``a-b`` ranges allowed) keeps only those labels and renumbers
them by their position in the list, so ``mnist:test:5,6,7,8,9`` has labels 0..4. Every loader
returns uint8 ``(N, C, H, W)`` images; every problem raises ``ValueError`` or
``FileNotFoundError`` naming the spec and what is wrong with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from soseleto import validate
from soseleto.data import builtin, files, images, sets, stream

_CLASSES = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True)
class SetSpec:
    """A parsed spec: ``kind`` is ``torchvision``, ``npz`` or ``folder``."""

    text: str
    kind: str
    location: str  # data set name or path
    split: str | None = None  # torchvision only
    classes: tuple[int, ...] | None = None


@dataclass
class ImageSet:
    """A loaded set: ``x`` uint8 ``(N, C, H, W)``, ``y`` int64 ``(N,)`` in ``[0, n_classes)``; a
    streamed ImageFolder (:func:`load_streamed`) has ``x = None`` and its decoding in ``files``."""

    spec: SetSpec
    x: torch.Tensor | None
    y: torch.Tensor
    n_classes: int
    index: torch.Tensor  # (N,) row of each sample in the file / data set before the class subset
    original_label: torch.Tensor  # (N,) label before renumbering by CLASSES
    class_names: list[str] | None = None  # folder names (ImageFolder only)
    paths: list[str] | None = None  # image file of each sample (ImageFolder only)
    n_rows: int | None = None  # samples in the file / data set before the class subset
    files: stream.LazyFiles | None = None  # a streamed set: how its images are decoded

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:]) if self.x is not None else self.files.shape


def parse_spec(text: str) -> SetSpec:
    """Parse a spec string (see the module docstring); raises ``ValueError`` on a malformed one."""
    if not text or not text.strip():
        raise ValueError("empty data set spec")
    body, classes = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and _CLASSES.match(tail) and not Path(text).exists():
        body, classes = head, _parse_classes(tail, text)
    name, _, split = body.partition(":")
    if name.lower() in sets.DATASETS and not Path(body).exists():
        if not split:
            raise ValueError(f"{text!r}: a torchvision set needs a split, e.g. {name}:train or {name}:test")
        if split not in sets.DATASETS[name.lower()].files:
            raise ValueError(f"{text!r}: split={split!r} is invalid; choose one of {sorted(sets.DATASETS[name.lower()].files)}")
        return SetSpec(text, "torchvision", name.lower(), split, classes)
    if builtin.is_builtin(name) and not Path(body).exists():
        if split:
            raise ValueError(f"{text!r}: {name} is a set shipped with the package and has no splits; name it as "
                             f"{name} or {name}:CLASSES and hold a test set out of it")
        return SetSpec(text, "npz", builtin.resolve(name), None, classes)
    path = Path(body)
    if body.endswith(".npz") and path.is_file():
        kind = "npz"
    elif path.is_dir():
        kind = "folder"
    elif path.exists():
        raise ValueError(f"{text!r}: {body} is neither an .npz file nor an ImageFolder directory")
    else:
        raise FileNotFoundError(
            f"{text!r}: no such file or directory {body!r}, and not a torchvision set "
            f"(NAME:SPLIT[:CLASSES] with NAME one of {sorted(sets.DATASETS)})"
        )
    return SetSpec(text, kind, body, None, classes)


def load_set(spec: SetSpec | str, *, data_dir: str | Path = "data", download: bool = False,
             size: tuple[int, int] | None = None) -> ImageSet:
    """Load ``spec`` as uint8 ``(N, C, H, W)`` images, keep its ``CLASSES`` and renumber them.

    ``size`` (H, W) resizes ImageFolder images while they are read (they may differ in size);
    other sets are resized later by :func:`harmonise`. Raises ``ValueError`` when the set is empty
    after the class subset or its labels are not non-negative integers.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    size = validate.check_size(size)
    names = paths = None
    if spec.kind == "torchvision":
        x, y = sets.load_torchvision(spec.location, spec.split, data_dir, download=download)
        n_classes = sets.DATASETS[spec.location].n_classes
    elif spec.kind == "npz":
        x, y = files.read_npz(spec.location, name=spec.text)
        n_classes = validate.class_count(y.numpy(), spec.text)
    else:
        x, y, names, paths = files.read_folder(spec.location, size=size, name=spec.text)
        n_classes = len(names)
    n_rows = len(y)
    index, original, y, n_classes, names = _keep_classes(spec, y, n_classes, names)
    if spec.classes is not None:
        x = x[index]
        paths = [paths[i] for i in index.tolist()] if paths else None
    return ImageSet(spec, x, y, n_classes, index, original, names, paths, n_rows)


def load_streamed(spec: SetSpec | str, *, size: tuple[int, int] | None = None, gray: bool = False) -> ImageSet:
    """An ImageFolder ``spec`` listed but not read: ``x`` is ``None`` and ``files`` says how its
    images are decoded while training (:class:`soseleto.data.stream.StreamedImages`); ``gray``
    converts them to PIL's luminance while decoding, ``size`` (H, W) resizes them."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.kind != "folder":
        raise ValueError(f"{spec.text!r}: only an ImageFolder can be streamed from disk; a {spec.kind} set is "
                         "read into memory (leave out --stream)")
    size = validate.check_size(size)
    paths, y, names = stream.folder_index(spec.location, name=spec.text)
    n_rows = len(y)
    index, original, y, n_classes, names = _keep_classes(spec, y, len(names), names)
    paths = [paths[i] for i in index.tolist()]
    lazy = stream.LazyFiles.probe(paths[0], mode="L" if gray else None, size=size, name=spec.text)
    stream.check_headers(paths, lazy, name=spec.text)  # now, not when training reaches the file
    return ImageSet(spec, None, y, n_classes, index, original, names, paths, n_rows, lazy)


def _keep_classes(spec: SetSpec, y: torch.Tensor, n_classes: int, names: list[str] | None):
    """``spec``'s ``CLASSES`` of labels ``y``: ``(kept rows, their original labels, renumbered
    labels, class count, class names)``; everything when it has none. Raises ``ValueError`` for a
    class the set lacks and for an empty result."""
    index, original = torch.arange(len(y)), y
    if spec.classes is not None:
        bad = [c for c in spec.classes if c >= n_classes]
        if bad:
            raise ValueError(f"{spec.text!r}: classes {bad} are not labels of this set (labels 0..{n_classes - 1})")
        index = images.class_rows(y, list(spec.classes))
        original = y[index]
        y = images.remap_labels(original, list(spec.classes))
        n_classes = len(spec.classes)
        names = [names[c] for c in spec.classes] if names else None
    if len(y) == 0:
        raise ValueError(f"{spec.text!r}: the set is empty" + (f" after keeping classes {list(spec.classes)}" if spec.classes else ""))
    return index, original, y, n_classes, names


def harmonise(sets: list[ImageSet], *, gray: bool = False, size: tuple[int, int] | None = None,
              like: ImageSet | None = None) -> None:
    """Bring every set to one image shape, in place: ``gray`` converts RGB to luminance, ``size``
    resizes to (H, W). ``like``: a streamed set (already converted while decoding) whose shape the
    others must end with. Raises ``ValueError`` naming the sets whose shapes then still differ, and
    a ``size`` too large (:func:`soseleto.data.validate.check_size`) or whose images would not fit
    in memory."""
    size = validate.check_size(size)
    for s in sets:
        if size is not None and tuple(s.x.shape[2:]) != tuple(size):
            c = 1 if gray else s.x.shape[1]
            validate.check_memory(validate.image_bytes(len(s), (c, *size)), s.spec.text,
                                  f"resizing its {len(s)} images to {size[0]}x{size[1]}")
    for s in sets:
        if gray and s.x.shape[1] != 1:
            s.x = images.to_gray_resized(s.x, size or tuple(s.x.shape[2:]))
        elif size is not None and tuple(s.x.shape[2:]) != tuple(size):
            s.x = images.resize(s.x, size)
    shapes = {s.spec.text: s.shape for s in ([like] if like is not None else []) + sets}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"mismatched image shapes (C, H, W): {listed}; use --gray and/or --size HxW to convert them")


def check_labels(s: ImageSet, n_classes: int, *, against: str) -> None:
    """Raise ``ValueError`` when a label of ``s`` is outside ``[0, n_classes)`` (the classes of ``against``)."""
    bad = s.y >= n_classes
    if bad.any():
        first = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"{s.spec.text!r}: label {int(s.y[first])} (sample {int(s.index[first])}) is outside the "
            f"{n_classes} classes of {against} (labels 0..{n_classes - 1})"
        )


def _parse_classes(tail: str, text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in tail.split(","):
        lo, _, hi = part.partition("-")
        if hi and int(hi) < int(lo):
            raise ValueError(f"{text!r}: class range {part!r} is empty")
        out += range(int(lo), int(hi or lo) + 1)
    if len(set(out)) != len(out):
        raise ValueError(f"{text!r}: classes {tail!r} repeat a label")
    return tuple(out)
