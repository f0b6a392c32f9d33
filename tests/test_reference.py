"""Results are those of the code before the one-loop refactor, bit for bit (CPU, one thread).

``tests/reference/pre_refactor.json`` holds the records of the scenarios of
``tests/reference/scenarios.py`` as computed by the code before the refactor (commit 5e25336);
``tests/reference/make_reference.py`` writes it anew. Each test here reruns one scenario through
today's API -- the same data, seeds and settings -- and compares per-epoch losses, alpha or scores,
accuracy and every tensor of the trained state. Tensors are compared by the SHA-256 of their bytes
when this machine's CPU capability and torch version match the reference's; otherwise (other
kernels may round differently) by their sums, and numbers to 1e-5.
"""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from reference.scenarios import SCENARIOS

REF = json.loads((Path(__file__).parent / "reference" / "pre_refactor.json").read_text())
EXACT = (REF["_meta"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
         and REF["_meta"]["torch"] == torch.__version__)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@functools.cache
def records(fn) -> dict:
    """The records of one scenario function (several scenarios may come from one run)."""
    return fn()


def assert_values(got, want, where: str) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if EXACT:
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=where)


def compare(got, want, where: str) -> None:
    """``got`` against the stored record ``want``: the same keys; tensors by digest; histories by
    their losses (not their timings); accuracies, other numbers and labels by value."""
    if isinstance(want, dict) and where.endswith(".state"):
        assert sorted(got) == sorted(want), where
        for key in want:
            if EXACT:
                assert got[key][0] == want[key][0], f"{where}[{key}] differs"
            else:
                assert_values(got[key][1:], want[key][1:], f"{where}[{key}]")
    elif isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            compare(got[key], want[key], f"{where}.{key}")
    elif where.endswith(".history") and isinstance(want[0], dict):
        for loss in ("loss_source", "loss_target"):
            w = [math.nan if h.get(loss) is None else h[loss] for h in want]
            if not math.isnan(w[0]):
                assert_values([h[loss] for h in got], w, f"{where}.{loss}")
    elif where.endswith("accuracy") and not EXACT:
        assert got == pytest.approx(want, abs=0.05), where
    elif isinstance(want, (str, bool)) or (isinstance(want, list) and want and isinstance(want[0], (str, bool))):
        assert got == want, where
    else:
        assert_values(np.ravel(np.asarray(got, dtype=float)), np.ravel(np.asarray(want, dtype=float)), where)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_the_reference(name):
    compare(json.loads(json.dumps(records(SCENARIOS[name])[name])), REF[name], name)


def test_every_stored_scenario_is_rebuilt():
    assert sorted(SCENARIOS) == sorted(k for k in REF if k != "_meta")
