import math

import pandas as pd
import pytest
import torch

from soseleto import bench
from soseleto.cli import main as cli_main

COLUMNS = [
    "model", "device", "source_batch", "target_batch", "plain_ms", "soseleto_ms", "ratio",
    "plain_peak_mb", "soseleto_peak_mb", "mem_ratio", "alpha_check_max_rel_err",
]


def test_quick_bench_writes_finite_csv_with_provenance(tmp_path):
    out = tmp_path / "step_cost.csv"
    assert cli_main(["bench", "--quick", "--models", "lenet", "--device", "cpu", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(COLUMNS) <= set(df.columns) and len(df) == 1
    row = df.iloc[0]
    assert row.model == "lenet" and row.device == "cpu" and row.alignment == "ghost"
    for col in ("plain_ms", "soseleto_ms", "ratio", "plain_peak_mb", "soseleto_peak_mb", "mem_ratio"):
        assert math.isfinite(row[col]) and row[col] > 0, col
    assert row.alpha_check_max_rel_err <= bench.CHECK_TOL
    assert (tmp_path / "step_cost.csv.provenance.json").exists()


@pytest.mark.parametrize("model", ["cifar_quick", "resnet18"])
def test_alpha_check_passes_for_ghost_and_forward_paths(model):
    assert bench.alpha_check(bench.SETTINGS[model], torch.device("cpu")) <= bench.CHECK_TOL
    assert torch.get_default_dtype() == torch.float32  # restored


def test_unknown_model_is_an_error():
    with pytest.raises(ValueError, match="no benchmark setting"):
        bench.run(["vgg"], device="cpu", reps=1)
