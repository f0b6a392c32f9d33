import contextlib
import errno
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch

from soseleto.core.checkpoint import save_checkpoint
from soseleto.io import atomic_path, provenance, save_figure, write_csv, write_json, write_markdown


def test_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_failed_rewrite(tmp_path):
    target = tmp_path / "m.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError
    assert json.loads(target.read_text()) == {"a": 1}


def test_csv_sidecar_records_provenance(tmp_path):
    write_csv(pd.DataFrame({"x": [1, 2]}), tmp_path / "t.csv", prov=provenance({"k": 3}, seed=5))
    side = json.loads((tmp_path / "t.csv.provenance.json").read_text())
    assert side["config"] == {"k": 3} and side["seed"] == 5
    assert side["soseleto_version"] and side["torch_version"]
    assert pd.read_csv(tmp_path / "t.csv").x.tolist() == [1, 2]


def test_sigkill_inside_a_write_leaves_no_complete_looking_file(tmp_path):
    """A process killed (SIGKILL: no cleanup at all) mid-write leaves only a hidden temp file."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from soseleto.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('seed,acc\\n0,0.')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "table.csv")], timeout=60)
    assert out.returncode == -9
    assert not (tmp_path / "table.csv").exists()
    assert all(p.name.startswith(".table.csv.") for p in tmp_path.iterdir())


def test_json_is_strict_with_null_for_non_finite_numbers(tmp_path):
    import numpy as np

    write_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": np.float64("-inf")}, "e": np.array([0.5, np.nan]),
                "f": "nan"}, tmp_path / "m.json", prov={"x": float("nan")})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert loaded == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": [0.5, None], "f": "nan", "provenance": {"x": None}}


def test_json_serialises_paths_and_dataclasses(tmp_path):
    from pathlib import Path

    from soseleto.config import PeerConfig

    write_json({"p": Path("a/b"), "cfg": PeerConfig()}, tmp_path / "m.json")
    loaded = json.loads((tmp_path / "m.json").read_text())
    assert loaded["p"] == "a/b" and loaded["cfg"]["target_weight"] == 0.5
    with pytest.raises(TypeError, match="cannot serialise object"):
        write_json({"o": object()}, tmp_path / "o.json")
    assert not (tmp_path / "o.json").exists()


def test_markdown_with_provenance_sidecar(tmp_path):
    write_markdown("| a |\n|---|\n| 1 |\n", tmp_path / "t.md", prov=provenance({"k": 1}))
    assert (tmp_path / "t.md").read_text() == "| a |\n|---|\n| 1 |\n"
    assert json.loads((tmp_path / "t.md.provenance.json").read_text())["config"] == {"k": 1}
    write_markdown("x\n", tmp_path / "u.md")
    assert not (tmp_path / "u.md.provenance.json").exists()


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


WRITERS = {
    "csv": lambda path: write_csv(pd.DataFrame({"x": [1, 2]}), path),
    "json": lambda path: write_json({"a": 1}, path),
    "markdown": lambda path: write_markdown("| a |\n", path),
    "checkpoint": lambda path: save_checkpoint({"w": torch.zeros(3)}, path, config={}),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_new_files_get_the_permissions_open_would_give(tmp_path, writer, mask):
    with _umask(mask):
        WRITERS[writer](tmp_path / "out")
        with open(tmp_path / "plain", "w"):
            pass
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_a_rewritten_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "m.json"
    write_json({"a": 1}, target)
    target.chmod(0o640)
    with _umask(0o002):
        write_json({"a": 2}, target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and json.loads(target.read_text()) == {"a": 2}


def _fills_the_disk(path_of, part: bytes):
    """A writer that writes ``part`` of its file to ``path_of(args)`` (a path or an open file) and
    then finds the disk full."""
    def write(*args, **kwargs):
        target = path_of(args)
        if hasattr(target, "write"):
            target.write(part)
        else:
            with open(target, "wb") as f:
                f.write(part)
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_leaves_no_partial_file_and_the_previous_one_untouched(tmp_path, monkeypatch, writer):
    """The disk fills in the middle of a write: the error names the file, the temporary file is
    gone and the file from before is intact."""
    target = tmp_path / "out"
    target.write_text("previous")
    monkeypatch.setattr(Path, "write_text", _fills_the_disk(lambda args: args[0], b'{"a'))
    monkeypatch.setattr(pd.DataFrame, "to_csv", _fills_the_disk(lambda args: args[1], b"x\n1"))
    monkeypatch.setattr(torch, "save", _fills_the_disk(lambda args: args[1], b"PK"))
    with pytest.raises(OSError, match=f"No space left on device \\(while writing '{re.escape(str(target))}'\\)") as err:
        WRITERS[writer](target)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and target.read_text() == "previous"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(range(1000), [i % 7 for i in range(1000)])
    return fig


REAL_WRITERS = {
    **WRITERS,
    "figure": lambda path: save_figure(_figure(), path, prov={"a": 1}),
    "csv-with-provenance": lambda path: write_csv(pd.DataFrame({"x": range(20000)}), path, prov={"a": 1}),
}


@pytest.mark.parametrize("writer", sorted(REAL_WRITERS))
def test_a_really_full_disk_is_named_and_keeps_the_previous_file(small_disk, writer):
    """On a real tmpfs with no block left: an OSError (ENOSPC, never torch's RuntimeError) that names
    the file, no temporary file left, the previous file intact; with space again the write works."""
    target = small_disk.path / ("out.png" if writer == "figure" else "out")
    target.write_text("previous")
    small_disk.fill()
    with pytest.raises(OSError, match=f"No space left on device \\(while writing '{re.escape(str(target))}") as err:
        REAL_WRITERS[writer](target)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in small_disk.path.iterdir()) == [".filler", target.name]
    assert target.read_text() == "previous"
    small_disk.empty()
    REAL_WRITERS[writer](target)
    assert target.stat().st_size > 0 and target.read_bytes() != b"previous"


def test_errors_about_other_files_keep_their_own_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv") as err, atomic_path(tmp_path / "out.csv"):
        pd.read_csv(tmp_path / "missing.csv")
    assert "while writing" not in str(err.value) and list(tmp_path.iterdir()) == []
