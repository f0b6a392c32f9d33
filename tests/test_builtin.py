"""The data sets shipped with the package: ``mnist5k`` and ``digits8x8`` wherever a data set is named."""

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
DIGITS_X_SHA = "b41ca9fd335466eee997366c2e6f6bbe0a1b4582afe091fc4eba35f4a254182f"  # digits8x8, same README
DIGITS_Y_SHA = "a3c91c262eddcf7ba8f0e37507c30284493c9b20412ffe4af30d536401f7ba21"


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



def test_digits8x8_file_is_scikit_learns_digits_on_the_0_255_scale():
    path = Path(builtin.resolve("digits8x8"))
    assert path.parent == REPO / "soseleto/data/builtin" and path.stat().st_size < 100_000
    with np.load(path, allow_pickle=False) as z:
        x, y = z["x"], z["y"]
    assert x.dtype == np.uint8 and x.shape == (1797, 8, 8) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 255 and np.bincount(y).min() >= 174
    assert hashlib.sha256(x.tobytes()).hexdigest() == DIGITS_X_SHA
    assert hashlib.sha256(y.tobytes()).hexdigest() == DIGITS_Y_SHA
    from sklearn.datasets import load_digits

    d = load_digits()
    np.testing.assert_array_equal(x, np.rint(d.images * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(y, d.target)
    readme = (path.parent / "README.md").read_text()
    assert DIGITS_X_SHA in readme and DIGITS_Y_SHA in readme and "CC BY 4.0" in readme


def test_digits8x8_is_a_file_set_and_a_fit_spec():
    x, y = sets.load_labelled("Digits8x8", "train", DataConfig())
    assert tuple(x.shape) == (1797, 1, 8, 8) and len(y) == 1797 and not sets.has_test_split("digits8x8")
    assert dataset_tag("digits8x8", DataConfig()) == "digits8x8"
    with pytest.raises(ValueError, match="has no 'test' split"):
        sets.load_labelled("digits8x8", "test", DataConfig())
    s = user.load_set(user.parse_spec("digits8x8:0-4"))
    assert len(s) == int(np.isin(y.numpy(), range(5)).sum()) and s.n_classes == 5
    with pytest.raises(ValueError, match="has no splits"):
        user.parse_spec("digits8x8:train")


def test_digits8x8_as_a_transfer_source_for_mnist5k(tmp_path):
    """Upsampled to the target's 28x28 by the transfer pipeline; its result paths name both sets."""
    from soseleto.config import SideConfig
    from soseleto.experiments import transfer
    from soseleto.paths import transfer_tag

    source, target = SideConfig("digits8x8", (0, 1, 2, 3, 4)), SideConfig("mnist5k", (5, 6, 7, 8, 9))
    assert transfer_tag(source, target, DataConfig()) == "digits8x8_01234-to-mnist5k_56789"
    df = transfer.write_source_split(source, DataConfig(), str(tmp_path / "source.csv"), target=target,
                                     test_per_class=100)
    _, y = sets.load_labelled("digits8x8", "train", DataConfig())
    assert len(df) == int(np.isin(y.numpy(), range(5)).sum())  # another file: no test rows removed
    paths = {k: str(tmp_path / f"{k}.csv") for k in ("target", "test")}
    transfer.write_target_split(target, DataConfig(), n_target=20, seed=0, outputs=paths, test_per_class=100)
    data_sets = transfer.prepare(transfer.Task(source, target, 28, "auto"), DataConfig(),
                                 {"source": str(tmp_path / "source.csv"), **paths})
    assert tuple(data_sets.source.x.shape) == (len(df), 1, 28, 28) and tuple(data_sets.test.x.shape) == (500, 1, 28, 28)
    assert data_sets.source.y.unique().tolist() == [0, 1, 2, 3, 4]

@pytest.mark.slow
def test_an_installed_package_carries_mnist5k(tmp_path):
    """``pip install .`` (here into a folder, from a copy of the sources) ships the files, and the
    installed package, run from elsewhere, reads them."""
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
            "print(b.resolve('mnist5k')); print(len(s)); print(len(user.load_set('digits8x8')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)})
    assert out.returncode == 0, out.stderr
    where, n, n_digits = out.stdout.split()
    assert Path(where).is_relative_to(target) and int(n) == 1000 and int(n_digits) == 1797
