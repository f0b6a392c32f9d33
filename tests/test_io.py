import json

import pandas as pd
import pytest

from soseleto.io import atomic_path, provenance, write_csv, write_json


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
    from soseleto.io import write_markdown

    write_markdown("| a |\n|---|\n| 1 |\n", tmp_path / "t.md", prov=provenance({"k": 1}))
    assert (tmp_path / "t.md").read_text() == "| a |\n|---|\n| 1 |\n"
    assert json.loads((tmp_path / "t.md.provenance.json").read_text())["config"] == {"k": 1}
    write_markdown("x\n", tmp_path / "u.md")
    assert not (tmp_path / "u.md.provenance.json").exists()
