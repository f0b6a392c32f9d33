import math
import os
import signal

import pandas as pd
import pytest
import torch

from soseleto.cost import bench
from soseleto.cli import main as cli_main
from soseleto.core.stop import Stopped

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
    for col in ("plain_ms", "soseleto_ms", "ratio", "plain_peak_mb", "soseleto_peak_mb", "mem_ratio",
                "plain_ms_loaded", "soseleto_ms_loaded", "ratio_loaded"):
        assert math.isfinite(row[col]) and row[col] > 0, col
    assert row.load == 1  # the default: timed again beside one busy process
    for step in bench.PEER_STEPS:  # every method's step, timed on the same batches as the plain one
        assert row[f"{step}_ms"] > 0 and row[f"{step}_ratio"] == pytest.approx(row[f"{step}_ms"] / row.plain_ms)
        assert row[f"{step}_ratio_loaded"] > 0, step
    assert row.alpha_check_max_rel_err <= bench.CHECK_TOL
    assert (tmp_path / "step_cost.csv.provenance.json").exists()


def test_load_zero_times_only_the_machine_as_it_is():
    df = bench.measure(["lenet"], device="cpu", reps=1, warmup=0, threads=None, load=0)
    assert df.load[0] == 0 and math.isnan(df.ratio_loaded[0]) and df.ratio[0] > 0


def test_compiled_error_is_measured_against_float64_steps():
    case = bench.Case(bench.SETTINGS["lenet"], torch.device("cpu"))
    tr = case.trainer()
    err, eager_err = bench.compiled_error(case, tr, tr.step, case.plain_step)  # eager steps: an exact "compilation"
    assert err == eager_err and 0 < eager_err < 1e-2
    for wrong in ("soseleto", "plain"):
        case = bench.Case(bench.SETTINGS["lenet"], torch.device("cpu"))
        tr = case.trainer()
        opt = tr.optimizer if wrong == "soseleto" else case.plain_opt
        lr = opt.param_groups[0]["lr"]

        def longer(step):  # a wrong "compilation": steps twice as long as the eager copy's
            def run(*batch):
                opt.param_groups[0]["lr"] = 2 * lr
                return step(*batch)
            return run

        steps = (longer(tr.step), case.plain_step) if wrong == "soseleto" else (tr.step, longer(case.plain_step))
        err, eager_err = bench.compiled_error(case, tr, *steps)
        assert err > 0.5 and eager_err < 1e-2, wrong


def test_a_trainer_moves_to_float64_whole():
    case = bench.Case(bench.SETTINGS["lenet"], torch.device("cpu"))
    tr = case.trainer(target_grad_decay=0.9, alpha_step="normalized")
    tr.step(case.xs, case.ys, case.idx, case.xt, case.yt)
    params = [p for g in tr.optimizer.param_groups for p in g["params"]]
    assert tr.to_dtype(torch.float64) is tr
    tensors = [tr.alpha, tr._a2, *tr._g_avg, *params, *(v for st in tr.optimizer.state.values() for v in st.values())]
    assert all(t.dtype == torch.float64 for t in tensors)
    assert [id(p) for p in tr.features.parameters()] == [id(p) for p in params[: len(list(tr.features.parameters()))]]
    tr.step(case.xs.double(), case.ys, case.idx, case.xt.double(), case.yt)  # steps on in float64


def test_a_compiled_step_that_differs_is_not_timed(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: fn)  # no compiler needed: the check is what counts
    monkeypatch.setattr(bench, "compiled_error", lambda case, tr, step, plain: (0.2, 1e-3))  # 200 times as far
    row = bench.measure(["lenet"], device="cpu", reps=1, warmup=0, threads=None, load=0, compile_mode="default").iloc[0]
    assert row.compile_max_rel_err == 0.2 and math.isnan(row.soseleto_ms_compiled) and math.isnan(row.plain_ms_compiled)
    assert row.soseleto_ms > 0  # the eager timing stands


@pytest.mark.slow
def test_compiled_steps_are_checked_and_timed():
    df = bench.measure(["lenet"], device="cpu", reps=1, warmup=0, threads=None, load=0, compile_mode="default")
    row = df.iloc[0]
    assert row.compile == "default" and 0 < row.eager_max_rel_err < 1e-2
    assert row.compile_max_rel_err <= max(bench.COMPILE_FACTOR * row.eager_max_rel_err, bench.COMPILE_FLOOR)
    assert row.plain_ms_compiled > 0 and row.soseleto_ms_compiled > 0 and math.isfinite(row.ratio_compiled)
    assert math.isnan(bench.measure(["lenet"], device="cpu", reps=1, warmup=0, threads=None, load=0).ratio_compiled[0])


def test_busy_processes_spin_while_the_block_runs_and_are_gone_after():
    import time

    def cpu_ticks(pid):  # user + system time of a process, from /proc
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    with bench.busy(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)  # running
        before = [cpu_ticks(p.pid) for p in procs]
        time.sleep(0.5)
        assert all(cpu_ticks(p.pid) > b for p, b in zip(procs, before))  # and using the CPU
    assert all(p.poll() is not None for p in procs)  # killed and reaped


def test_busy_processes_end_when_their_parent_dies(tmp_path):
    import subprocess
    import sys
    import time

    code = ("import sys, time\nfrom soseleto.cost import bench\nwith bench.busy(1) as p:\n"
            "    print(p[0].pid, flush=True)\n    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no finally runs; the busy child must notice and stop by itself
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{child}/stat").read().split()[2] == "Z":  # exited, waiting to be reaped by init
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("a busy process outlived its parent")


@pytest.mark.parametrize("model", ["cifar_quick", "resnet18"])
def test_alpha_check_passes_for_ghost_and_forward_paths(model):
    assert bench.alpha_check(bench.SETTINGS[model], torch.device("cpu")) <= bench.CHECK_TOL
    assert torch.get_default_dtype() == torch.float32  # restored


def test_unknown_model_is_an_error():
    with pytest.raises(ValueError, match="no benchmark setting"):
        bench.measure(["vgg"], device="cpu", reps=1, warmup=0, threads=None, load=0)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_bench_between_repetitions_and_writes_nothing(tmp_path, monkeypatch, capfd, signum):
    out = tmp_path / "step_cost.csv"
    calls, step = [], bench.Case.plain_step

    def signalled(case):  # the signal arrives inside the second timed plain step
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
        step(case)

    monkeypatch.setattr(bench.Case, "plain_step", signalled)
    before = signal.getsignal(signum)
    with pytest.raises(Stopped) as err:
        cli_main(["bench", "--models", "lenet", "--reps", "1000", "--device", "cpu", "--out", str(out)])
    name = signal.Signals(signum).name
    assert str(err.value) == f"bench: stopped by {name} while timing lenet (repetition 3 of 1002); nothing was written"
    assert err.value.code == 128 + signum and len(calls) == 2  # no step after the signal's repetition
    assert f"WARNING soseleto.cost.bench: {err.value}" in capfd.readouterr().err  # the log line
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signum) is before
