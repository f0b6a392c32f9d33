"""The torchvision sets the project knows, in one table: image shape, the training images per
class, the files torchvision keeps for each split and its loader. The data layer reads them from
here (:mod:`soseleto.data.sets`), and so does the cost plan, which must count steps without
loading anything. Imports neither torch nor numpy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetInfo:
    """One torchvision set: ``shape`` ``(C, H, W)``, ``train_counts`` (training images per class,
    whose length is the class count), ``files`` (split -> files expected under the data folder) and
    ``loader`` (its ``torchvision.datasets`` class)."""

    shape: tuple[int, int, int]
    train_counts: tuple[int, ...]
    files: dict[str, tuple[str, ...]]
    loader: str

    @property
    def n_classes(self) -> int:
        return len(self.train_counts)


def _idx(folder: str) -> dict[str, tuple[str, ...]]:
    raw = f"{folder}/raw"
    return {split: (f"{raw}/{p}-images-idx3-ubyte", f"{raw}/{p}-labels-idx1-ubyte")
            for split, p in (("train", "train"), ("test", "t10k"))}


CATALOG: dict[str, SetInfo] = {
    "cifar10": SetInfo((3, 32, 32), (5000,) * 10, {"train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in
                                                                  range(1, 6)),
                                                   "test": ("cifar-10-batches-py/test_batch",)}, "CIFAR10"),
    "cifar100": SetInfo((3, 32, 32), (500,) * 100, {"train": ("cifar-100-python/train",),
                                                    "test": ("cifar-100-python/test",)}, "CIFAR100"),
    "svhn": SetInfo((3, 32, 32), (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659),
                    {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}, "SVHN"),
    "mnist": SetInfo((1, 28, 28), (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949), _idx("MNIST"),
                     "MNIST"),
    "fashionmnist": SetInfo((1, 28, 28), (6000,) * 10, _idx("FashionMNIST"), "FashionMNIST"),
    "kmnist": SetInfo((1, 28, 28), (6000,) * 10, _idx("KMNIST"), "KMNIST"),
}
