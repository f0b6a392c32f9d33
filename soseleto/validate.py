"""Limits on what soseleto reads, checked before anything is allocated.

Every reader of user files goes through here: ``.npz`` and ``.npy`` arrays (their headers are read
first and their declared sizes compared with the file and with the memory available), labels (whole
numbers, ``0 <= label < MAX_CLASSES``, without overflow), image sizes (``--size``, decoded
pixels) and zip archives such as torch checkpoints (declared sizes against memory). Each failure
is a ``ValueError`` that names the file (or option) and what is wrong with it.

This module imports neither torch nor PIL: the cost plan reads set sizes through it while
Snakemake builds the DAG.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CLASSES = 10_000  # a classifier head of more outputs is not what a label file means
MAX_SIDE = 4096  # pixels per side of the images a network trains on (--size, decoded images)
MAX_IMAGE_PIXELS = 89_478_485  # PIL's own limit on a decoded image file (Image.MAX_IMAGE_PIXELS)
MAX_RATIO = 100  # an array that decompresses more than this many times ...
RATIO_FLOOR = 64 << 20  # ... to more than 64 MiB is a decompression bomb, not images
SPARSE_FLOOR = 100  # above this many classes, most of 0..K-1 must hold a sample (see class_count)
BYTES_PER_PIXEL = 5  # a loaded pixel: its uint8 copy and the float32 one training reads
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ArrayInfo:
    """What a ``.npy`` header declares: ``shape``, ``dtype``, and ``stored``: the bytes the file
    (or the zip member, uncompressed) holds after the header."""

    shape: tuple[int, ...]
    dtype: np.dtype
    stored: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


def available_memory() -> int:
    """Bytes this process may still allocate: the system's available memory, or less where a
    cgroup (a container, a SLURM job) limits it."""
    free = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = Path(limit).read_text().strip()
            if cap != "max" and int(cap) < 1 << 60:
                free.append(int(cap) - int(Path(usage).read_text()))
        except (OSError, ValueError):
            continue
    if not free:
        try:
            free.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            return 1 << 62
    return max(0, min(free))


def check_memory(nbytes: int, name: str, what: str) -> None:
    """Refuse ``what`` of ``name`` when it needs more than the memory available (:func:`available_memory`)."""
    free = available_memory()
    if nbytes > free:
        raise ValueError(f"{name!r}: {what} needs about {_gib(nbytes)} of memory, more than the {_gib(free)} "
                         "available; use fewer or smaller images (an ImageFolder source can be read batch by "
                         "batch with --stream)")


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"


def image_bytes(n: int, shape: Sequence[int]) -> int:
    """Memory that ``n`` loaded images of ``shape`` (C, H, W) take (:data:`BYTES_PER_PIXEL` each)."""
    return int(n) * math.prod(int(s) for s in shape) * BYTES_PER_PIXEL


def check_size(size: Sequence[int] | None, name: str = "size") -> tuple[int, int] | None:
    """``size`` (H, W) as a pair of ints in ``1..MAX_SIDE``, or ``None``; ``ValueError`` naming ``name``."""
    if size is None:
        return None
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={size!r} is invalid; expected (H, W)") from None
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise ValueError(f"{name}={h}x{w} is invalid: each side must be 1..{MAX_SIDE} pixels")
    return h, w


# -- .npy and .npz -----------------------------------------------------------------------------------
def _header(fp, name: str, where: str, stored: int) -> ArrayInfo:
    """The array header at ``fp`` (after which ``stored`` bytes follow the magic's start)."""
    start = fp.tell()
    try:
        version = np.lib.format.read_magic(fp)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = read(fp)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, zlib.error, zipfile.BadZipFile) as err:
        raise ValueError(f"{name!r}: {where} has no readable .npy header ({err})") from None
    if dtype.hasobject:
        raise ValueError(f"{name!r}: {where} holds Python objects (dtype=object), which only unpickling could load, "
                         "and soseleto never unpickles data files; save it as a numeric array")
    if any(s < 0 for s in shape):
        raise ValueError(f"{name!r}: {where} declares the shape {shape}")
    info = ArrayInfo(tuple(int(s) for s in shape), dtype, stored - (fp.tell() - start))
    if info.stored != info.nbytes:
        state = "truncated" if info.stored < info.nbytes else "longer than its header says"
        raise ValueError(f"{name!r}: {where} is {state}: its header declares {info.dtype} of shape {info.shape} "
                         f"({info.nbytes:,} bytes), the file holds {info.stored:,}")
    return info


def inspect_npy(path: str | os.PathLike, name: str | None = None) -> ArrayInfo:
    """The header of the ``.npy`` file at ``path``, checked against the file's size."""
    name = name or os.fspath(path)
    with _open(path, name) as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise ValueError(f"{name!r}: not a .npy file (no NumPy header); expected an array saved with numpy.save")
        f.seek(0)
        return _header(f, name, "the array", os.fstat(f.fileno()).st_size)


def inspect_npz(path: str | os.PathLike, name: str | None = None) -> dict[str, ArrayInfo]:
    """The headers of every array of the ``.npz`` archive at ``path`` (nothing decompressed beyond
    them): each checked against its member's size, and against decompression bombs."""
    name = name or os.fspath(path)
    with _open(path, name) as f:
        if f.read(4) not in _ZIP_MAGIC:
            raise ValueError(f"{name!r}: not a readable .npz file: not a zip of arrays (as numpy.savez "
                             f"writes); {_what(f)}")
    arrays = {}
    with _zip(path, name) as z:
        for member in z.infolist():
            key = member.filename.removesuffix(".npy")
            where = f"array {key!r}"
            try:
                with z.open(member) as fp:
                    info = _header(fp, name, where, member.file_size)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
                raise ValueError(f"{name!r}: {where} cannot be read ({err}); the archive is damaged") from None
            ratio = member.file_size / max(1, member.compress_size)
            if member.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
                raise ValueError(f"{name!r}: {where} decompresses {ratio:,.0f} times ({member.compress_size:,} bytes "
                                 f"to {member.file_size:,}): a decompression bomb, not images")
            arrays[key] = info
    return arrays


def load_npz(path: str | os.PathLike, name: str | None = None, *, keys: Iterable[str] | None = None,
             per_pixel: str | None = None) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (default all) of the ``.npz`` at ``path``, after :func:`inspect_npz`
    and a memory check (``per_pixel``: the key of the images, counted :data:`BYTES_PER_PIXEL`
    per element on top of their stored size)."""
    name = name or os.fspath(path)
    infos = inspect_npz(path, name)
    keys = list(infos) if keys is None else [k for k in keys if k in infos]
    need = sum(infos[k].nbytes for k in keys)
    if per_pixel in keys:
        need += infos[per_pixel].size * BYTES_PER_PIXEL
    check_memory(need, name, f"loading {', '.join(f'{k} {infos[k].dtype} {infos[k].shape}' for k in keys)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in keys}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{name!r}: not a readable .npz archive ({err})") from None


def load_npy(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """The array of the ``.npy`` at ``path``, after :func:`inspect_npy` and a memory check."""
    name = name or os.fspath(path)
    info = inspect_npy(path, name)
    check_memory(info.nbytes, name, f"loading {info.dtype} {info.shape}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{name!r}: not a readable .npy file ({err})") from None


def load_labels_file(path: str | os.PathLike, name: str | None = None) -> np.ndarray:
    """A ``.npy`` array, or the array ``y`` of an ``.npz`` (told apart by their first bytes)."""
    name = name or os.fspath(path)
    with _open(path, name) as f:
        npy = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    if npy:
        return load_npy(path, name)
    arrays = inspect_npz(path, name)
    if "y" not in arrays:
        raise ValueError(f"{name!r}: no array 'y' (found {sorted(arrays)})")
    return load_npz(path, name, keys=("y",))["y"]


def _open(path: str | os.PathLike, name: str):
    try:
        return open(path, "rb")  # the caller closes it
    except IsADirectoryError:
        raise ValueError(f"{name!r}: is a folder, not a file") from None
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{name!r}: cannot be read ({err.strerror or err})") from None


def _zip(path: str | os.PathLike, name: str, what: str = "not a readable .npz file") -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{name!r}: {what}: a damaged or truncated zip ({err})") from None


def _what(f) -> str:
    f.seek(0)
    head = f.read(8)
    if not head:
        return "the file is empty"
    if head.startswith(_NPY_MAGIC):
        return "it is a single .npy array"
    return f"it starts with {head!r}"


def check_archive(path: str | os.PathLike, name: str | None = None) -> None:
    """Refuse a zip archive (a torch checkpoint) whose members declare more bytes than memory holds,
    or that decompress like a bomb; files that are not zips are left to their reader."""
    name = name or os.fspath(path)
    with _open(path, name) as f:
        if f.read(4) not in _ZIP_MAGIC:
            return
    with _zip(path, name, "checkpoint could not be read") as z:
        members = z.infolist()
    total = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members)
    if total > RATIO_FLOOR and total / max(1, packed) > MAX_RATIO:
        raise ValueError(f"{name!r}: decompresses {total / max(1, packed):,.0f} times ({packed:,} to {total:,} bytes): "
                         "a decompression bomb, not a checkpoint")
    check_memory(total, name, "reading it")


# -- labels ------------------------------------------------------------------------------------------
def labels(y: np.ndarray, name: str, what: str = "y") -> np.ndarray:
    """Labels ``y`` ``(N,)`` as int64, refusing (naming ``name``, ``what`` and the first bad sample)
    non-numeric, fractional, NaN, negative and too large values (``>= MAX_CLASSES``), compared in
    their own type so that nothing overflows on the way."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name!r}: {what} has shape {y.shape}; expected labels of shape (N,)")
    if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"{name!r}: {what} has dtype {y.dtype}; expected integer labels 0, 1, ...")
    if y.size == 0:
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (np.mod(np.where(np.isfinite(y), y, 0), 1) != 0)
        _refuse(bad, y, name, what, "is a non-integer label; expected integer labels 0, 1, ...")
    _refuse(y < 0, y, name, what, "is a negative label; labels must be 0, 1, ...")
    _refuse(y >= MAX_CLASSES, y, name, what, f"is too large a label (at most {MAX_CLASSES - 1}, "
            "the classes a classifier here may have; a stray or corrupted label?)")
    return y.astype(np.int64)


def _refuse(bad: np.ndarray, y: np.ndarray, name: str, what: str, why: str) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name!r}: {what}[{i}] = {y[i].item()!r} {why} ({int(bad.sum())} such label(s))")


def class_count(y: np.ndarray, name: str) -> int:
    """The classes ``K = largest label + 1`` of checked labels ``y`` (:func:`labels`). Above
    :data:`SPARSE_FLOOR` classes, refuses a ``K`` of which fewer than half hold a sample: a
    classifier of ``K`` outputs for a few classes means a stray label, not a label space."""
    y = np.asarray(y)
    if y.size == 0:
        return 0
    k = int(y.max()) + 1
    present = len(np.unique(y))
    if k > SPARSE_FLOOR and present < k / 2:
        i = int(np.argmax(y))
        raise ValueError(f"{name!r}: the largest label, {k - 1} (sample {i}), makes {k} classes, but only {present} of "
                         "them have samples; labels must number the classes 0..K-1 (a stray label?)")
    return k
