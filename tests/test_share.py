"""The sharing benchmark (:mod:`soseleto.cost.share`): k real training processes on one device."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from soseleto.cost import share


def test_jobs_side_by_side_are_counted_against_one_alone(tmp_path):
    out = tmp_path / "share_cost.csv"
    assert share.main(["--models", "lenet", "--kinds", "soseleto", "--jobs", "2", "--seconds", "1",
                       "--device", "cpu", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df["jobs"]) == [1, 2]  # one job is always measured: the gain is relative to it
    assert (df["steps"] > 0).all() and (df["peak_mb"] > 0).all()
    assert df["speedup"].iloc[0] == 1.0
    assert df["speedup"].iloc[1] == pytest.approx(df["steps_per_s"].iloc[1] / df["steps_per_s"].iloc[0])
    assert df["slowdown"].iloc[1] == pytest.approx(2 / df["speedup"].iloc[1])
    prov = json.loads((tmp_path / "share_cost.csv.provenance.json").read_text())
    assert prov["config"]["bench"]["share_jobs"] == [2]


def test_a_worker_whose_parent_is_gone_takes_no_step():
    cmd = [sys.executable, "-m", "soseleto.cost.share", "--worker", "lenet", "plain", "cpu", "0.2", "0"]
    proc = subprocess.run(cmd, input="", capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.split() == ["ready", "{}"]  # stdin closed without go: no steps taken, and it ends


@pytest.mark.parametrize("argv, message", [(["--jobs", "0"], "--jobs [0], --seconds 0.1 and --threads 1 must be"),
                                           (["--models", "vgg"], "invalid choice: 'vgg'")])
def test_bad_arguments_are_named(tmp_path, argv, message, capsys):
    out = tmp_path / "x.csv"
    with pytest.raises(SystemExit) as err:
        share.main([*argv, "--out", str(out), "--seconds", "0.1"])
    assert err.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()
