"""A model fitted by ``soseleto fit``, used on new images: :func:`load` and ``soseleto predict``.

``model.pt`` keeps how the training images were prepared: made gray (``--gray``), resized
(``--size``, then ``auto``'s scaling up for its network), standardised with the training mean and
std. :class:`FittedModel` prepares new images with the very same functions, in the same order,
and reports classes by the labels the training data used (before ``:CLASSES`` renumbering).

    import soseleto
    model = soseleto.load("fit/model.pt")
    labels = model.predict("test.npz")           # (N,) labels; also an array (N, H, W[, C]) or a folder
    proba = model.predict_proba("test.npz")      # (N, K); column k is the class model.labels[k]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soseleto.core.evaluate import predict_proba
from soseleto.data import files
from soseleto.data.images import to_float
from soseleto.data.user import ImageSet, SetSpec, harmonise, load_set


@dataclass
class Images:
    """Images to label: ``x`` uint8 ``(N, C, H, W)``; ``labels`` ``(N,)`` as given in the set, or
    ``None`` when it has none; ``index`` ``(N,)`` the row of each in the set; ``paths`` (folders)."""

    name: str
    x: torch.Tensor
    labels: np.ndarray | None
    index: np.ndarray
    paths: list[str] | None = None


def read_images(images, *, size: tuple[int, int] | None = None, data_dir: str | Path = "data",
                download: bool = False) -> Images:
    """``images`` as :class:`Images`: an array laid out as an ``.npz``'s ``x`` ``(N, H, W[, C])``,
    an ``.npz`` (labels ``y`` optional), a folder of images (flat, unlabelled) or any set of
    ``soseleto fit`` (``NAME:SPLIT[:CLASSES]``, ``FILE.npz[:CLASSES]``, an ImageFolder). ``size``
    (H, W) resizes folder images while they are read, as ``fit --size`` did."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        x = files.array_images(images.numpy() if isinstance(images, torch.Tensor) else images, "images")
        return Images("images", x, None, np.arange(len(x)))
    text = os.fspath(images)
    path = Path(text)
    if path.is_dir() and not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return _flat_folder(path, size)
    if path.suffix == ".npz" and path.is_file() and not _has_labels(path):
        x = files.read_npz_images(path, name=text)
        return Images(text, x, None, np.arange(len(x)))
    s = load_set(text, data_dir=data_dir, download=download, size=size)
    return Images(text, s.x, s.original_label.numpy(), s.index.numpy(), s.paths)


def _has_labels(path: Path) -> bool:
    """Whether the ``.npz`` at ``path`` has an array ``y`` (a file that cannot be opened counts as
    labelled: reading it as a labelled set then says what is wrong with it)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return "y" in z.files
    except (OSError, ValueError):
        return True


def _flat_folder(root: Path, size: tuple[int, int] | None) -> Images:
    """Every image file directly in ``root``, sorted by name; gray when the first one is (as
    ImageFolder sets are read for ``soseleto fit``)."""
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in files.IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{str(root)!r} holds no images ({', '.join(files.IMAGE_SUFFIXES)}) and no class folders")
    arrays, mode = [], None
    for p in paths:
        arr, mode = files.read_image(p, mode, size, str(root))
        if arrays and arr.shape != arrays[0].shape:
            raise ValueError(f"{str(root)!r}: image {str(p)!r} has shape {arr.shape}, {str(paths[0])!r} has "
                             f"{arrays[0].shape} (H, W, C); the model was fitted on images of one size")
        arrays.append(arr)
    x = torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())  # (N, C, H, W)
    return Images(str(root), x, None, np.arange(len(x)), [str(p) for p in paths])


class FittedModel:
    """The network of a ``model.pt`` and how it prepares images (see the module docstring).

    Attributes: ``labels`` ``(K,)`` the label of each output class as the training data gave it;
    ``class_names`` (ImageFolder training sets) or ``None``; ``in_shape`` (C, H, W) the network's input.
    """

    def __init__(self, features: torch.nn.Module, head: torch.nn.Module, state: dict):
        self.features, self.head, self.state = features, head, state
        self.in_shape = tuple(state["in_shape"])
        self.mean, self.std = state["mean"], state["std"]
        pre = state.get("preprocess") or {}
        self.gray = bool(pre.get("gray", False))
        self.size = tuple(pre["size"]) if pre.get("size") else None
        self.model_size = tuple(pre["model_size"]) if pre.get("model_size") else None
        # the training images' shape (C, H, W) before model auto scaled them up: what new images must become
        self.image_shape = tuple(pre.get("shape") or self.in_shape)
        k = head.out_features
        self.labels = np.asarray(state.get("labels") or range(k), dtype=np.int64)
        self.class_names = state.get("class_names")

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> FittedModel:
        from soseleto.experiments.fit import load_fitted

        return cls(*load_fitted(path, device=device))

    def read(self, images, *, data_dir: str | Path = "data", download: bool = False) -> Images:
        """``images`` (see :func:`read_images`) read as the training sets were."""
        return read_images(images, size=self.size, data_dir=data_dir, download=download)

    def prepare(self, images: Images) -> torch.Tensor:
        """Float ``(N, C, H, W)`` network input: gray, resized and standardised as in training.
        Raises ``ValueError`` when the images, so prepared, are not of the training images' shape."""
        s = ImageSet(SetSpec(images.name, "images", images.name), images.x, torch.zeros(len(images.x), dtype=torch.int64),
                     0, torch.as_tensor(images.index), torch.zeros(len(images.x), dtype=torch.int64))
        harmonise([s], gray=self.gray, size=self.size)
        if tuple(s.x.shape[1:]) != self.image_shape:
            c, h, w = self.image_shape
            how = (" (RGB made gray)" if self.gray else "") + (f", resized to {h}x{w}" if self.size else ", not resized")
            raise ValueError(f"{images.name!r}: images of shape {tuple(images.x.shape[1:])} (C, H, W) are not those "
                             f"this model was fitted on: {'gray' if c == 1 else 'colour'} {h}x{w}{how}")
        if self.model_size is not None:
            harmonise([s], size=self.model_size)
        return to_float(s.x, mean=self.mean, std=self.std)

    def predict_proba(self, images, **read) -> np.ndarray:
        """Class probabilities ``(N, K)`` of ``images`` (an array, a path or :class:`Images`);
        column ``k`` is the class ``labels[k]``."""
        images = images if isinstance(images, Images) else self.read(images, **read)
        return predict_proba(self.features, self.head, self.prepare(images)).cpu().numpy()

    def predict(self, images, **read) -> np.ndarray:
        """The most probable label ``(N,)`` of each image, as the training data numbered it."""
        return self.labels[self.predict_proba(images, **read).argmax(1)]

    def table(self, images: Images) -> pd.DataFrame:
        """One row per image: ``index`` (``path``), ``label`` (labelled sets), ``prediction``
        (``class``: its name), ``prob_<label>`` for each class."""
        proba = self.predict_proba(images)
        pred = self.labels[proba.argmax(1)]
        df = pd.DataFrame({"index": images.index})
        if images.paths:
            df["path"] = images.paths
        if images.labels is not None:
            df["label"] = images.labels
        df["prediction"] = pred
        if self.class_names:
            df["class"] = [self.class_names[k] for k in proba.argmax(1)]
        for k, label in enumerate(self.labels):
            df[f"prob_{label}"] = proba[:, k]
        return df


def load(path: str | os.PathLike, *, device: str = "cpu") -> FittedModel:
    """The model a ``soseleto fit`` wrote to ``path`` (``OUT/model.pt``), ready to ``predict``."""
    return FittedModel.load(path, device=device)


def main(args) -> int:
    """Entry point of ``soseleto predict``: write ``args.out`` and print what was predicted."""
    from soseleto.core.device import resolve_device
    from soseleto.io import provenance, write_csv

    model = load(args.model, device=str(resolve_device(args.device)))
    images = model.read(args.images, data_dir=args.data_dir, download=args.download)
    df = model.table(images)
    write_csv(df, args.out, prov=provenance({"model": os.fspath(args.model), "images": os.fspath(args.images)}))
    line = f"predicted {len(df)} images"
    if images.labels is not None:
        known = np.isin(images.labels, model.labels)  # labels the model never saw are errors all the same
        line += f"; accuracy {float((df['prediction'] == df['label']).mean()):.2%} against their labels"
        if not known.all():
            line += f" ({int((~known).sum())} of them have labels the model does not know)"
    print(f"{line}; wrote {args.out}")
    return 0
