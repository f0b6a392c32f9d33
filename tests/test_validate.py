"""Every reader of user files against damaged, oversized, wrong-typed and random files
(:mod:`soseleto.data.validate` and the readers built on it): each answers with a ``ValueError``
naming the file (exit 2 from the CLI), allocates nothing it was not told it could, and writes nothing."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from soseleto import cli
from soseleto.config import DataConfig, Schedule
from soseleto.core.loop import train
from soseleto import validate
from soseleto.data import files
from soseleto.data.user import load_set, load_streamed
from soseleto.experiments import fit
from soseleto.cost import work

from builders import blobs, soseleto_config


# -- files, good and bad -----------------------------------------------------------------------------
def _good_npz(path, n=24, n_classes=3, compressed=False):
    g = np.random.default_rng(0)
    save = np.savez_compressed if compressed else np.savez
    save(path, x=g.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % n_classes)
    return path


def _good_npy(path, n=24):
    np.save(path, np.arange(n) % 3)
    return path


def _png_bytes(size=(8, 8), seed=0):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(w=40_000, h=40_000) -> bytes:
    """A 100-byte PNG whose header declares w x h pixels (1.6 G for the default): PIL's bomb error."""
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _npy_header(shape, dtype="<u1") -> bytes:
    """A .npy file of only a header (version 1.0) declaring ``shape``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _mutations(good: bytes, seed: int = 0) -> dict[str, bytes]:
    """Damaged versions of the file ``good``: empty, truncated, random, byte flips, another format."""
    g = np.random.default_rng(seed)
    out = {"empty": b"", "one-byte": good[:1], "text": b"x,y\n1,2\n"}
    for frac in (0.1, 0.5, 0.9):
        out[f"truncated-{frac}"] = good[: int(len(good) * frac)]
    out["minus-one-byte"] = good[:-1]
    for n in (7, 300, len(good)):
        out[f"random-{n}"] = g.integers(0, 256, n, dtype=np.uint8).tobytes()
    for i in range(6):
        flipped = bytearray(good)
        for pos in g.integers(0, len(good), 4):
            flipped[pos] ^= int(g.integers(1, 256))
        out[f"flips-{i}"] = bytes(flipped)
    out["other-format"] = _png_bytes() if not good.startswith(b"\x89PNG") else _npy_header((2,)) + b"\0\0"
    return out


def _assert_named(err: BaseException, path) -> None:
    assert os.path.basename(str(path)) in str(err), str(err)


def _refused_or_read(read, path, *, must_fail: bool) -> None:
    """``read(path)`` returns normally (a flip may leave a file valid) or raises ValueError naming it."""
    try:
        read(path)
    except ValueError as err:
        _assert_named(err, path)
        return
    assert not must_fail, f"{path} was accepted"


MUST_FAIL = ("empty", "one-byte", "text", "truncated", "minus-one-byte", "random", "other-format")


def _must_fail(kind: str) -> bool:
    return kind.startswith(MUST_FAIL)


# -- the readers ---------------------------------------------------------------------------------------
def _source(n=24):
    """A loaded source set of ``n`` samples, for the true-labels reader."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load_set(str(_good_npz(os.path.join(d, "s.npz"), n=n)))


READERS = {
    "npz": (lambda p: files.read_npz(p), lambda d: _good_npz(d / "good.npz").read_bytes()),
    "npz-compressed": (lambda p: load_set(str(p)), lambda d: _good_npz(d / "good.npz", compressed=True).read_bytes()),
    "npy-true-labels": (lambda p: fit.read_true_labels(p, _source()), lambda d: _good_npy(d / "good.npy").read_bytes()),
    "npz-true-labels": (lambda p: fit.read_true_labels(p, _source()), lambda d: _good_npz(d / "good.npz").read_bytes()),
    "plan-probe": (lambda p: work.class_counts(str(p), DataConfig(), results=p.parent), lambda d: _good_npz(d / "good.npz").read_bytes()),
    "image": (lambda p: files.read_image(p, None, None, str(p)), lambda d: _png_bytes((64, 64))),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_damaged_files_naming_them(tmp_path, reader):
    read, good = READERS[reader]
    suffix = ".png" if reader == "image" else (".npy" if "npy" in reader else ".npz")
    for kind, data in _mutations(good(tmp_path)).items():
        path = tmp_path / f"{kind}{suffix}"
        path.write_bytes(data)
        # a PNG less its last byte (the end marker's checksum) still holds every pixel
        _refused_or_read(read, path, must_fail=_must_fail(kind) and (reader, kind) != ("image", "minus-one-byte"))


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    """A model.pt of a tiny ``soseleto fit`` run (1 epoch)."""
    d = tmp_path_factory.mktemp("model")
    g = np.random.default_rng(0)
    for name, n in (("s", 48), ("t", 12)):
        np.savez(d / f"{name}.npz", x=g.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 3)
    assert cli.main(["fit", "--mode", "noisy", "--source", str(d / "s.npz"), "--target", str(d / "t.npz"),
                     "--out", str(d / "fit"), "--epochs", "1", "--device", "cpu"]) == 0
    return d / "fit" / "model.pt"


def test_model_and_resume_readers_refuse_damaged_files(tmp_path, model_pt):
    good = model_pt.read_bytes()
    source, target = blobs(20, seed=1), blobs(6, seed=2)
    for kind, data in _mutations(good).items():
        path = tmp_path / f"{kind}.pt"
        path.write_bytes(data)
        _refused_or_read(lambda p: fit.load_fitted(p), path, must_fail=_must_fail(kind))
        # as a resume file: its identity is not the run's, so even a file that loads is refused
        _refused_or_read(lambda p: train(_tiny_trainer(), source, target, schedule=Schedule(1, 4, 3), seed=0,
                                         checkpoint=p, identity={"run": 1}), path, must_fail=True)


def _tiny_trainer():
    from soseleto.core.models import build_classifier, build_features
    from soseleto.core.rng import seeded
    from soseleto.core.soseleto import Soseleto

    with seeded(0):
        features, dim = build_features("mlp", (4,), hidden=8)
        head = build_classifier(dim, 3)
    cfg = soseleto_config(lr_p=0.1, source_batch=4, target_batch=3, epochs=1)
    return Soseleto(features, head, None, n_source=20, n_target=6, cfg=cfg)


@pytest.mark.parametrize("change,needle", [
    (lambda s: s.update(in_shape=[1, 10**6, 10**6]), r"in_shape is \[1, 1000000, 1000000\]"),
    (lambda s: s.update(in_shape="28x28"), "in_shape is '28x28'"),
    (lambda s: s.update(features="weights"), "features is not a dict of tensors"),
    (lambda s: s.update(source_head={"weight": "w", "bias": 1}), "source_head is not a dict of tensors"),
    (lambda s: s.update(n_source_classes=10**9), "n_source_classes is 1000000000"),
    (lambda s: s.update(config="lenet"), "config is 'lenet', not a dict"),
    (lambda s: s.update(config={"model": "os.system"}), "config.model is 'os.system'"),
    (lambda s: s.pop("features"), "no features"),
    (lambda s: s.update(in_shape=[1, 2, 2]), "cannot be built|has shape"),
    (lambda s: s["features"].update({k: torch.zeros(10**4) for k in list(s["features"])[:1]}), "has shape"),
    (lambda s: s.update(mean=torch.zeros(7)), "mean is not a tensor of 1 channel"),
], ids=["huge-shape", "string-shape", "string-features", "string-weights", "huge-classes", "string-config",
        "unknown-model", "missing-key", "image-smaller-than-kernel", "wrong-weight-shape", "bad-mean"])
def test_a_model_file_of_plain_but_hostile_values_is_refused(tmp_path, model_pt, change, needle):
    state = torch.load(model_pt, weights_only=True)
    change(state)
    path = tmp_path / "hostile.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=needle) as err:
        fit.load_fitted(path)
    _assert_named(err.value, path)


# -- declared sizes, checked before allocating ---------------------------------------------------------
def test_a_npy_header_declaring_a_trillion_elements_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_header((10**12,)) + b"\0" * 64)
    with pytest.raises(ValueError, match=r"huge\.npy': the array is truncated: its header declares uint8 of shape "
                                         r"\(1000000000000,\)"):
        validate.load_npy(path)
    with pytest.raises(ValueError, match="huge.npy"):
        fit.read_true_labels(path, _source())


def test_an_npz_member_declaring_more_than_it_holds_is_refused(tmp_path):
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", _npy_header((10**6, 28, 28)) + b"\0" * 100)
        z.writestr("y.npy", _npy_header((10**6,), "<i8"))
    with pytest.raises(ValueError, match=r"lies\.npz': array 'x' is truncated"):
        files.read_npz(path)


def test_more_than_memory_holds_is_refused_naming_the_file(tmp_path, monkeypatch):
    path = _good_npz(tmp_path / "big.npz", n=240)
    monkeypatch.setattr(validate, "available_memory", lambda: 10_000)
    with pytest.raises(ValueError, match=r"big\.npz': loading x uint8 \(240, 8, 8\), y .* needs about .* MiB of memory, "
                                         r"more than the .* available"):
        files.read_npz(path)


@pytest.mark.slow
def test_an_npz_decompression_bomb_is_refused_from_its_sizes(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((70_000, 32, 32), np.uint8), y=np.zeros(70_000, np.int64))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"bomb\.npz': array 'x' decompresses .* times .*: a decompression bomb"):
        files.read_npz(path)


def test_a_png_bomb_is_refused_from_its_header(tmp_path):
    (tmp_path / "imgs/a").mkdir(parents=True)
    (tmp_path / "imgs/b").mkdir(parents=True)
    for c in "ab":
        (tmp_path / f"imgs/{c}/0.png").write_bytes(_png_bytes())
    (tmp_path / "imgs/b/1.png").write_bytes(_png_bomb())
    for read in (lambda: files.read_folder(tmp_path / "imgs"), lambda: load_streamed(str(tmp_path / "imgs"))):
        with pytest.raises(ValueError, match=r"imgs/b/1\.png'.*(decompression bomb|exceeds limit)"):
            read()
    (tmp_path / "imgs/b/1.png").write_bytes(_png_bomb(6000, 6000))  # below PIL's limit, above the side limit
    with pytest.raises(ValueError, match=r"1\.png' is 6000x6000 pixels, wider or taller than the 4096"):
        files.read_folder(tmp_path / "imgs")


@pytest.mark.parametrize("y,needle", [
    (np.array([0, 1, 2**63 + 1], np.uint64), r"y\[2\] = 9223372036854775809 is too large a label"),
    (np.array([0, 1, 1e30]), r"y\[2\] = 1e\+30 is too large a label"),
    (np.array([0, 1, np.nan]), r"y\[2\] = nan is a non-integer label"),
    (np.array([0, 1, 2, 10**6]), r"y\[3\] = 1000000 is too large a label"),
    (np.r_[np.arange(10), 5000], r"the largest label, 5000 \(sample 10\), makes 5001 classes, but only 11"),
    (np.array([True, False, True]), "dtype bool"),
], ids=["uint64-overflow", "float-1e30", "nan", "stray-million", "stray-5000", "bool"])
def test_labels_that_overflow_or_stray_are_refused(tmp_path, y, needle):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((len(y), 8, 8), np.uint8), y=y)
    with pytest.raises(ValueError, match=needle) as err:
        load_set(str(path))
    _assert_named(err.value, path)


def test_sizes_beyond_the_limit_are_refused():
    with pytest.raises(ValueError, match=r"size=60000x60000 is invalid: each side must be 1\.\.4096"):
        validate.check_size((60000, 60000))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["fit", "--mode", "noisy", "--source", "s", "--target", "t", "--out", "o",
                                       "--size", "60000"])


def test_resizing_beyond_memory_is_refused(tmp_path, monkeypatch):
    from soseleto.data.user import harmonise

    s = load_set(str(_good_npz(tmp_path / "s.npz")))
    monkeypatch.setattr(validate, "available_memory", lambda: 1 << 20)
    with pytest.raises(ValueError, match=r"s\.npz': resizing its 24 images to 4096x4096 needs about"):
        harmonise([s], size=(4096, 4096))


# -- through the command line: exit 2, the file named, nothing written ---------------------------------
def _sets(tmp_path):
    g = np.random.default_rng(1)
    paths = {}
    for name, n in (("source", 48), ("target", 12), ("test", 12)):
        paths[name] = str(tmp_path / f"{name}.npz")
        np.savez(paths[name], x=g.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 3)
    return paths


def _cli(sets, out, *extra):
    return cli.main(["fit", "--mode", "noisy", "--source", sets["source"], "--target", sets["target"],
                     "--test", sets["test"], "--out", str(out), "--epochs", "1", "--device", "cpu", *extra])


@pytest.mark.parametrize("role", ["source", "target", "test", "true-labels"])
def test_the_cli_answers_every_damaged_file_with_exit_2_naming_it(tmp_path, capsys, role):
    sets = _sets(tmp_path)
    good = Path(sets["source"]).read_bytes()
    for kind, data in _mutations(good, seed=3).items():
        bad = tmp_path / f"{kind}.{'npy' if role == 'true-labels' else 'npz'}"
        bad.write_bytes(data)
        out = tmp_path / f"out-{kind}"
        if role == "true-labels":
            code = _cli(sets, out, "--true-labels", str(bad))
        else:
            code = _cli({**sets, role: str(bad)}, out)
        err = capsys.readouterr().err
        if code == 0 and not _must_fail(kind):
            continue  # a flip that left the file valid
        assert code == 2, (kind, err)
        assert bad.name in err and "soseleto: error:" in err and "Traceback" not in err, (kind, err)
        assert not out.exists(), kind  # nothing written


def _folder(root, sizes):
    for i, size in enumerate(sizes):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"c{i % 2}" / f"{i:02d}.png").write_bytes(_png_bytes(size, seed=i))
    return root


@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "stream"])
def test_image_folders_with_a_bad_file_exit_2_naming_it(tmp_path, capsys, stream):
    sets = {**_sets(tmp_path), "target": _sets(tmp_path)["target"] + ":0,1", "test": _sets(tmp_path)["test"] + ":0,1"}
    extra = ("--stream", "--workers", "0") if stream else ()
    cases = {
        "bomb": lambda root: (root / "c1/09.png").write_bytes(_png_bomb()),
        "truncated": lambda root: (root / "c1/09.png").write_bytes(_png_bytes((8, 8), seed=9)[:40]),
        "random": lambda root: (root / "c1/09.png").write_bytes(os.urandom(200)),
        "odd-size": lambda root: (root / "c1/09.png").write_bytes(_png_bytes((9, 8), seed=9)),
        "not-utf8": lambda root: os.mkdir(os.path.join(os.fsencode(root), b"c\xff")) or
        (root / os.fsdecode(b"c\xff") / "0.png").write_bytes(_png_bytes()),
    }
    for kind, damage in cases.items():
        root = _folder(tmp_path / f"src-{kind}", [(8, 8)] * 10)
        damage(root)
        out = tmp_path / f"out-{kind}"
        code = _cli({**sets, "source": str(root)}, out, *extra)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, (kind, err)
        named = "c\\udcff" if kind == "not-utf8" else "09.png"
        assert named in err or "c\\xff" in err, (kind, err)
        assert not out.exists() and "fit: epoch" not in err, kind


def test_an_out_below_a_file_is_refused_before_reading(tmp_path, capsys):
    sets = _sets(tmp_path)
    (tmp_path / "file").write_text("")
    assert _cli(sets, tmp_path / "file" / "out") == 2
    assert "lies below" in capsys.readouterr().err
