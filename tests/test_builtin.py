"""The data sets shipped with the package: ``mnist5k`` wherever a data set is named."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from soseleto.config import DataConfig, NoisySplitConfig, from_mapping
from soseleto.data import builtin, sets, user
from soseleto.paths import dataset_tag
from soseleto.cost import work

REPO = Path(__file__).resolve().parents[1]
# SHA-256 of x.tobytes() and y.tobytes(), as stated in soseleto/data/builtin/README.md
X_SHA = "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"
Y_SHA = "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367"


def test_mnist5k_file_holds_the_documented_arrays():
    path = Path(builtin.resolve("mnist5k"))
    assert path.parent == REPO / "soseleto/data/builtin" and path.stat().st_size < 1_500_000  # compressed
    with np.load(path, allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    assert x.dtype == np.uint8 and x.shape == (5000, 28, 28) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [500] * 10
    assert hashlib.sha256(x.tobytes()).hexdigest() == X_SHA and hashlib.sha256(y.tobytes()).hexdigest() == Y_SHA
    readme = (path.parent / "README.md").read_text()
    assert X_SHA in readme and Y_SHA in readme and "CC BY-SA 3.0" in readme


def test_mnist5k_is_read_as_a_file_set_with_the_same_tag():
    x, y = sets.load_labelled("MNIST5K", "train", DataConfig())
    assert tuple(x.shape) == (5000, 1, 28, 28) and len(y) == 5000
    assert not sets.has_test_split("mnist5k")
    with pytest.raises(ValueError, match="has no 'test' split"):
        sets.load_labelled("mnist5k", "test", DataConfig())
    # result paths are those of the file it replaces (results/noisy/mnist5k/...)
    assert dataset_tag("mnist5k", DataConfig()) == dataset_tag("data/mnist5k.npz", DataConfig()) == "mnist5k"
    assert sets.manifest("mnist5k", DataConfig())["train"]["class_counts"] == [500] * 10


def test_mnist5k_as_a_fit_spec():
    spec = user.parse_spec("mnist5k:5-9")
    assert spec.kind == "npz" and spec.location == builtin.resolve("mnist5k") and spec.classes == (5, 6, 7, 8, 9)
    s = user.load_set(spec)
    assert len(s) == 2500 and s.n_classes == 5 and s.original_label.unique().tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="has no splits"):
        user.parse_spec("mnist5k:train")


def test_mnist5k_in_the_config_needs_a_held_out_test_split():
    with pytest.raises(ValueError, match="test_per_class"):
        from_mapping(NoisySplitConfig, {"dataset": "mnist5k"})
    assert from_mapping(NoisySplitConfig, {"dataset": "mnist5k", "test_per_class": 100}).dataset == "mnist5k"
    assert work.class_counts("mnist5k", DataConfig(), results="nowhere") == ([500] * 10, 1)


@pytest.mark.slow
def test_an_installed_package_carries_mnist5k(tmp_path):
    """``pip install .`` (here into a folder, from a copy of the sources) ships the file, and the
    installed package, run from elsewhere, reads it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "soseleto", src / "soseleto", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    code = ("import soseleto.data.builtin as b; from soseleto.data import user\n"
            "s = user.load_set('mnist5k:0,1')\n"
            "print(b.resolve('mnist5k')); print(len(s))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    where, n = out.stdout.split()
    assert Path(where).is_relative_to(target) and int(n) == 1000
