"""The one epoch loop (:func:`soseleto.core.loop.train`): batches, resume, identity, monitors,
the finite check, history, progress lines, and stopping on SIGTERM / SIGINT."""

import logging
import math
import os
import signal
import time

import pytest
import torch

from soseleto.config import Schedule
from soseleto.core.checkpoint import safe_load
from soseleto.core.loop import (EpochStats, Labeled, check_finite, cycle_batches, runtime, runtime_mismatch,
                                train)
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import generator, seeded
from soseleto.core.soseleto import Soseleto
from soseleto.core.stop import Stopped
from soseleto.methods.plain import PlainSGD

from builders import blobs, plain_config, soseleto_config


class _Killed(Exception):
    pass


class Recorder:
    """A method that learns nothing and records the batches it is given."""

    def __init__(self):
        self.calls, self.steps = [], torch.zeros((), dtype=torch.int64)

    def step(self, xs, ys, idx, xt, yt):
        self.calls.append((idx.clone(), None if xt is None else xt.clone(), None if yt is None else yt.clone()))
        self.steps += 1
        loss_t = None if xt is None else xt.mean()
        return xs.mean(), loss_t

    def state_dict(self):
        return {"steps": self.steps.clone()}

    def load_state_dict(self, state):
        self.steps.copy_(state["steps"])


class RecordingSoseleto(Soseleto):
    """SOSELETO that also records its source indices and target batches."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = []

    def step(self, xs, ys, idx, xt, yt):
        self.calls.append((idx.clone(), xt.clone(), yt.clone()))
        return super().step(xs, ys, idx, xt, yt)


def _soseleto(cls=Soseleto, *, n_source=20, model="mlp", in_shape=(4,), **cfg):
    with seeded(0):
        features, dim = build_features(model, in_shape, **({"hidden": 8} if model == "mlp" else {}))
        head = build_classifier(dim, 3)
    conf = soseleto_config(**{"lr_p": 0.1, "lr_alpha": 10.0, "momentum": 0.9, "source_batch": 4, "target_batch": 3,
                              "epochs": 5, **cfg})
    return cls(features, head, None, n_source=n_source, n_target=6, cfg=conf)


def _data():
    return blobs(20, seed=1), blobs(6, seed=2)


def _state(tr):
    return [tr.alpha, *tr.features.parameters(), *tr.source_head.parameters()]


def _numbers(history):
    """Everything of a history but the wall-clock seconds."""
    return [(h.epoch, h.loss_source, h.loss_target, h.values) for h in history]


SCHEDULE = Schedule(epochs=4, source_batch=6, target_batch=4)


# -- batches -------------------------------------------------------------------------------------
def test_each_epoch_is_a_permutation_of_the_source_in_batches():
    rec = Recorder()
    history = train(rec, blobs(20, seed=0), None, schedule=SCHEDULE, seed=3)
    assert [h.epoch for h in history] == [1, 2, 3, 4]
    assert len(rec.calls) == 4 * 4  # 20 samples in batches of 6: 6, 6, 6, 2
    for e in range(4):
        epoch = rec.calls[4 * e : 4 * e + 4]
        assert [len(idx) for idx, _, _ in epoch] == [6, 6, 6, 2]
        assert sorted(torch.cat([idx for idx, _, _ in epoch]).tolist()) == list(range(20))
    # each epoch draws its own order
    assert not torch.equal(rec.calls[0][0], rec.calls[4][0])


def test_batches_are_the_same_for_every_method_given_the_seed():
    source, target = _data()
    schedule = Schedule(epochs=3, source_batch=4, target_batch=3)
    rec = Recorder()
    train(rec, source, target, schedule=schedule, seed=5)
    sos = _soseleto(RecordingSoseleto)
    train(sos, source, target, schedule=schedule, seed=5)
    assert len(rec.calls) == len(sos.calls) == 3 * 5
    for (i1, x1, y1), (i2, x2, y2) in zip(rec.calls, sos.calls):
        assert torch.equal(i1, i2) and torch.equal(x1, x2) and torch.equal(y1, y2)
    # a run without a target (plain SGD) sees the same source batches
    plain = Recorder()
    train(plain, source, None, schedule=schedule, seed=5)
    assert all(xt is None for _, xt, _ in plain.calls)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(plain.calls, rec.calls))
    # another seed, other batches
    other = Recorder()
    train(other, source, target, schedule=schedule, seed=6)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(other.calls, rec.calls))


def test_target_batches_cycle_through_reshuffled_passes():
    source, target = blobs(40, seed=0), blobs(6, seed=1)
    rec = Recorder()
    train(rec, source, target, schedule=Schedule(epochs=1, source_batch=4, target_batch=4), seed=0)
    rows = {tuple(x.tolist()): i for i, x in enumerate(target.x)}
    batches = [[rows[tuple(x.tolist())] for x in xt] for _, xt, _ in rec.calls]
    assert len(batches) == 10 and all(len(b) == 4 == len(set(b)) for b in batches)  # full batches only
    assert all(torch.equal(target.y[b], yt) for b, (_, _, yt) in zip(batches, rec.calls))
    # a target batch larger than the target set is the whole set
    rec = Recorder()
    train(rec, source, target, schedule=Schedule(epochs=1, source_batch=10, target_batch=32), seed=0)
    assert all(len(xt) == 6 for _, xt, _ in rec.calls)


def test_cycle_batches_reshuffle_after_each_pass():
    batches = cycle_batches(7, 3, generator(0), torch.device("cpu"))
    first_pass = [next(batches) for _ in range(2)]  # 7 // 3 full batches per pass; the rest is dropped
    second_pass = [next(batches) for _ in range(2)]
    for p in (first_pass, second_pass):
        flat = torch.cat(p).tolist()
        assert len(flat) == len(set(flat)) == 6 and set(flat) <= set(range(7))
    assert torch.cat(first_pass).tolist() != torch.cat(second_pass).tolist()


# -- history ---------------------------------------------------------------------------------------
def test_history_holds_the_mean_losses_and_the_method_summary():
    source, target = _data()
    sos = _soseleto()
    history = train(sos, source, target, schedule=Schedule(epochs=2, source_batch=4, target_batch=3), seed=0)
    assert all(set(h.values) == {"alpha_mean"} and h.seconds > 0 for h in history)
    assert history[-1].values["alpha_mean"] == pytest.approx(float(sos.alpha.mean()))
    plain = Recorder()
    history = train(plain, source, None, schedule=Schedule(epochs=1, source_batch=5, target_batch=None), seed=0)
    assert history[0].loss_target is None and history[0].values == {}
    expected = torch.stack([source.x[idx].mean() for idx, _, _ in plain.calls]).mean()
    assert history[0].loss_source == pytest.approx(float(expected))


def test_epoch_record_leaves_out_absent_quantities_and_round_trips():
    plain = EpochStats(3, 0.5, None, {"test_accuracy": 0.9}, 1.5)
    assert plain.record() == {"epoch": 3, "loss_source": 0.5, "test_accuracy": 0.9, "seconds": 1.5}
    assert EpochStats.from_record(plain.record()) == plain
    paired = EpochStats(1, 0.5, 0.25, {"alpha_mean": 0.8}, 2.0)
    assert paired.record() == {"epoch": 1, "loss_source": 0.5, "loss_target": 0.25, "alpha_mean": 0.8, "seconds": 2.0}
    assert EpochStats.from_record(paired.record()) == paired


def test_on_epoch_sees_every_epoch():
    seen = []
    history = train(Recorder(), blobs(10, seed=0), None, schedule=Schedule(3, 5, None), seed=0, on_epoch=seen.append)
    assert seen == history and [s.epoch for s in seen] == [1, 2, 3]


def test_labeled_sets_are_checked():
    with pytest.raises(ValueError, match="x has 3 rows but y has 2"):
        Labeled(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty"):
        Labeled(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64))


# -- resume ---------------------------------------------------------------------------------------
IDENTITY = {"method": "soseleto", "settings": {"lr_p": 0.1}, "seed": 0}


@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_resume_is_bit_identical_and_returns_the_whole_history(tmp_path, checkpoint_every):
    """Killed during epoch 4 of 5, then re-run: the same alpha, weights and history as one
    uninterrupted run; the resumed history holds the epochs before the kill."""
    source, target = _data()
    schedule = Schedule(epochs=5, source_batch=4, target_batch=3, checkpoint_every=checkpoint_every)
    full = _soseleto()
    full_history = train(full, source, target, schedule=schedule, seed=0)

    ck = tmp_path / "run.ckpt"
    first, done = _soseleto(), []

    def die(stats):
        done.append(stats)
        if stats.epoch == 3:
            raise _Killed  # the checkpoint of epoch 3 (or 2, every 2 epochs) is on disk

    with pytest.raises(_Killed):
        train(first, source, target, schedule=schedule, seed=0, checkpoint=ck, identity=IDENTITY, on_epoch=die)
    saved = torch.load(ck, weights_only=False)
    assert saved["epoch"] == (3 if checkpoint_every == 1 else 2) and len(saved["history"]) == saved["epoch"]

    resumed = _soseleto()
    history = train(resumed, source, target, schedule=schedule, seed=0, checkpoint=ck, identity=IDENTITY)
    assert [h.epoch for h in history] == [1, 2, 3, 4, 5]
    assert _numbers(history) == _numbers(full_history)
    assert _numbers(history[: saved["epoch"]]) == _numbers(done[: saved["epoch"]])  # read back, not re-run
    assert [h.seconds for h in history[: saved["epoch"]]] == [h.seconds for h in done[: saved["epoch"]]]
    for a, b in zip(_state(resumed), _state(full)):
        assert torch.equal(a, b)
    for a, b in zip(resumed.optimizer.state_dict()["state"].values(), full.optimizer.state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])  # momentum resumes too
    assert torch.load(ck, weights_only=False)["epoch"] == 5  # written at the end


def test_a_finished_run_is_not_trained_again(tmp_path):
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    schedule = Schedule(epochs=2, source_batch=4, target_batch=3)
    history = train(Recorder(), source, target, schedule=schedule, seed=0, checkpoint=ck, identity=IDENTITY)
    again = Recorder()
    assert _numbers(train(again, source, target, schedule=schedule, seed=0, checkpoint=ck, identity=IDENTITY)) == \
        _numbers(history)
    assert again.calls == [] and int(again.steps) == 2 * 5  # state restored, no step taken


def test_checkpoint_of_another_identity_is_refused_naming_the_key(tmp_path):
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    train(Recorder(), source, target, schedule=Schedule(1, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY)
    other = {**IDENTITY, "settings": {"lr_p": 0.2}}
    with pytest.raises(ValueError, match=r"run\.ckpt.*different config \(settings\.lr_p: 0\.1 vs 0\.2\)"):
        train(Recorder(), source, target, schedule=Schedule(2, 4, 3), seed=0, checkpoint=ck, identity=other)
    with pytest.raises(ValueError, match=r"seed: 0 vs 1"):
        train(Recorder(), source, target, schedule=Schedule(2, 4, 3), seed=0, checkpoint=ck,
              identity={**IDENTITY, "seed": 1})


@pytest.fixture
def threads():
    """Set torch's CPU threads in a test, restoring them afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_a_state_saved_under_another_thread_count_or_dtype_is_refused(tmp_path, threads):
    """CPU sums are split by thread: a run resumed under another thread count (or device, dtype,
    deterministic flag) would match neither run, so it is refused, naming what differs."""
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    threads(1)
    train(_soseleto(), source, target, schedule=Schedule(1, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY)
    assert safe_load(ck)["runtime"] == {"device": "cpu", "threads": 1, "dtypes": ["float32"], "deterministic": False}
    threads(2)
    with pytest.raises(ValueError, match=r"run\.ckpt' holds a run started with threads 1 \(now 2\).*delete the file"):
        train(_soseleto(), source, target, schedule=Schedule(2, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY)
    threads(1)
    with pytest.raises(ValueError, match=r"dtypes float32 \(now float64\)"):
        train(_soseleto().to_dtype(torch.float64), source.to("cpu"), target, schedule=Schedule(2, 4, 3), seed=0,
              checkpoint=ck, identity=IDENTITY)
    assert len(train(_soseleto(), source, target, schedule=Schedule(2, 4, 3), seed=0, checkpoint=ck,
                     identity=IDENTITY)) == 2  # as it started: resumed


def test_runtime_mismatch_names_what_differs_and_accepts_old_states():
    now = runtime("cpu")
    assert runtime_mismatch(None, now) == "" and runtime_mismatch(now, now) == ""
    assert runtime_mismatch({**now, "deterministic": True}, now) == "deterministic True (now False)"


def test_a_resume_file_that_does_not_fit_the_method_is_named(tmp_path):
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    train(_soseleto(), source, target, schedule=Schedule(1, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY)
    state = safe_load(ck)
    state["alpha"] = "a string where a tensor belongs"
    torch.save(state, ck)
    with pytest.raises(ValueError, match=r"run\.ckpt' does not hold a state of this run .*delete it"):
        train(_soseleto(), source, target, schedule=Schedule(2, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY)


def test_identity_is_required_with_a_checkpoint(tmp_path):
    source, target = _data()
    with pytest.raises(ValueError, match="identity"):
        train(Recorder(), source, target, schedule=Schedule(1, 4, 3), seed=0, checkpoint=tmp_path / "run.ckpt")
    assert not (tmp_path / "run.ckpt").exists()


# -- stopping on SIGTERM / SIGINT -------------------------------------------------------------------
class SignalAt:
    """A method that sends ``signals`` to this process from inside its ``at``-th step (from 1),
    as SLURM's time limit or a Ctrl-C would, at any moment of a step."""

    def __init__(self, method, at, *signals):
        self.method, self.at, self.signals, self.count = method, at, signals, 0

    def step(self, *batch):
        self.count += 1
        if self.count == self.at:
            for i, signum in enumerate(self.signals):
                before = signal.getsignal(signum)
                os.kill(os.getpid(), signum)
                # the kernel merges a signal still pending with the next one of its kind: before sending
                # another, let the handler of this one run (it changes the handler; 5 s at most)
                deadline = time.monotonic() + 5
                while i + 1 < len(self.signals) and signal.getsignal(signum) is before and time.monotonic() < deadline:
                    time.sleep(0.001)
        return self.method.step(*batch)

    def __getattr__(self, name):  # state_dict, load_state_dict and, when the method has it, summary
        return getattr(self.method, name)


def _plain():
    with seeded(0):
        f, d = build_features("mlp", (4,), hidden=8)
        h = build_classifier(d, 3)
    return PlainSGD(f, h, plain_config(lr_p=0.1, momentum=0.9))


def _plain_state(m):
    return [*m.features.parameters(), *m.head.parameters()]


KINDS = {"soseleto": (lambda: _soseleto(target_grad_decay=0.9), _state, True), "plain": (_plain, _plain_state, False)}
SIGNAL_SCHEDULE = Schedule(epochs=3, source_batch=4, target_batch=3)  # 20 source samples: 5 steps per epoch


@pytest.mark.parametrize("kind", ["soseleto", "plain"])
@pytest.mark.parametrize("at,signum,where", [
    (8, signal.SIGTERM, "at epoch 2 step 3"),  # inside epoch 2: the position within it is saved
    (5, signal.SIGINT, "at epoch 2 step 0"),  # inside the last step of epoch 1: stops after its checkpoint
    (15, signal.SIGTERM, "after its last epoch (3)"),  # inside the very last step: the run is done, but stops
])
def test_a_signal_stops_at_the_next_step_and_the_rerun_is_bit_identical(tmp_path, kind, at, signum, where):
    build, state, with_target = KINDS[kind]
    source, target = blobs(20, seed=1), blobs(6, seed=2) if with_target else None
    full = build()
    full_history = train(full, source, target, schedule=SIGNAL_SCHEDULE, seed=0)

    ck, before = tmp_path / "run.ckpt", signal.getsignal(signum)
    stopped = SignalAt(build(), at, signum)
    with pytest.raises(Stopped) as err:
        train(stopped, source, target, schedule=SIGNAL_SCHEDULE, seed=0, checkpoint=ck, identity=IDENTITY, name=kind)
    assert str(err.value) == f"{kind}: stopped by {signal.Signals(signum).name} {where}; state saved to {ck}, rerun to resume"
    assert err.value.code == 128 + signum and stopped.count == at  # no step after the signal's
    assert signal.getsignal(signum) is before  # the handlers are restored

    resumed = build()
    history = train(resumed, source, target, schedule=SIGNAL_SCHEDULE, seed=0, checkpoint=ck, identity=IDENTITY)
    assert _numbers(history) == _numbers(full_history)
    for a, b in zip(state(resumed), state(full)):
        assert torch.equal(a, b)
    for a, b in zip(resumed.optimizer.state_dict()["state"].values(), full.optimizer.state_dict()["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    if kind == "soseleto":
        assert resumed._steps == full._steps and all(torch.equal(a, b) for a, b in zip(resumed._g_avg, full._g_avg))


def test_the_saved_position_holds_the_steps_done_and_their_loss_sums(tmp_path):
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    rec = Recorder()
    with pytest.raises(Stopped):
        train(SignalAt(rec, 7, signal.SIGTERM), source, target, schedule=SIGNAL_SCHEDULE, seed=0, checkpoint=ck,
              identity=IDENTITY)
    saved = safe_load(ck)
    assert saved["epoch"] == 1 and len(saved["history"]) == 1 and int(saved["steps"]) == 7
    assert saved["position"]["step"] == 2 and saved["position"]["seconds"] >= 0
    epoch2 = rec.calls[5:7]
    expected = torch.stack([torch.stack([source.x[i].mean(), xt.mean()]) for i, xt, _ in epoch2]).sum(0)
    assert torch.allclose(saved["position"]["sums"], expected)
    # the rerun skips the 2 done steps of epoch 2 and draws the batches the full run draws after them
    again = Recorder()
    train(again, source, target, schedule=SIGNAL_SCHEDULE, seed=0, checkpoint=ck, identity=IDENTITY)
    full = Recorder()
    train(full, source, target, schedule=SIGNAL_SCHEDULE, seed=0)
    assert len(again.calls) == 15 - 7
    for (i1, x1, _), (i2, x2, _) in zip(again.calls, full.calls[7:]):
        assert torch.equal(i1, i2) and torch.equal(x1, x2)


def test_without_a_checkpoint_a_signal_stops_the_run_and_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, target = _data()
    with pytest.raises(Stopped) as err:
        train(SignalAt(Recorder(), 3, signal.SIGINT), source, target, schedule=SIGNAL_SCHEDULE, seed=0, name="demo")
    assert str(err.value) == "demo: stopped by SIGINT at epoch 1 step 3; no checkpoint was given, so no state was saved"
    assert err.value.code == 130 and isinstance(err.value, SystemExit) and list(tmp_path.iterdir()) == []


def test_a_second_signal_gets_the_previous_behaviour(tmp_path):
    """Ctrl-C twice: the first asks for a clean stop, the second interrupts at once (Python's
    KeyboardInterrupt inside the step), and the last saved state stays as it was."""
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    # Python's own SIGINT handler before the run, whatever an earlier test in this process left
    left = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(SignalAt(Recorder(), 8, signal.SIGINT, signal.SIGINT), source, target, schedule=SIGNAL_SCHEDULE,
                  seed=0, checkpoint=ck, identity=IDENTITY)
    finally:
        after = signal.signal(signal.SIGINT, left)
    assert safe_load(ck)["epoch"] == 1 and safe_load(ck)["position"] is None
    assert after is signal.default_int_handler


def test_outside_the_main_thread_signals_are_left_alone():
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(train(Recorder(), blobs(8, seed=0), None,
                                                               schedule=Schedule(1, 4, None), seed=0)))
    thread.start(), thread.join()
    assert len(seen) == 1 and len(seen[0]) == 1


def test_a_process_sent_sigterm_exits_143_and_its_rerun_ends_bit_identical(tmp_path):
    """A real process: SIGTERM from outside during a step; exit status 143 and the log line;
    the rerun of the same command finishes to the uninterrupted result."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import os, sys, time, torch\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_loop import _soseleto, IDENTITY, SIGNAL_SCHEDULE\n"
        "from builders import blobs\n"
        "from soseleto.core.loop import train\n"
        "class Waits:\n"
        "    def __init__(self, m): self.m, self.n = m, 0\n"
        "    def step(self, *b):\n"
        "        self.n += 1\n"
        "        if self.n == 8 and not os.path.exists(sys.argv[1] + '.ready'):\n"
        "            open(sys.argv[1] + '.ready', 'w').close()\n"
        "            while not os.path.exists(sys.argv[1] + '.sent'):  # the signal arrives during this step\n"
        "                time.sleep(0.02)\n"
        "        return self.m.step(*b)\n"
        "    def __getattr__(self, k): return getattr(self.m, k)\n"
        "tr = _soseleto(target_grad_decay=0.9)\n"
        "train(Waits(tr), blobs(20, seed=1), blobs(6, seed=2), schedule=SIGNAL_SCHEDULE, seed=0,\n"
        "      checkpoint=sys.argv[1], identity=IDENTITY, name='soseleto')\n"
        "torch.save([tr.alpha, *tr.features.parameters()], sys.argv[1] + '.final')\n"
    )
    ck, tests_dir = str(tmp_path / "run.ckpt"), str(Path(__file__).parent)
    proc = subprocess.Popen([sys.executable, "-c", code, ck, tests_dir], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(ck + ".ready") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    Path(ck + ".sent").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"soseleto: stopped by SIGTERM at epoch 2 step 3; state saved to {ck}, rerun to resume" in err
    assert not os.path.exists(ck + ".final")
    rerun = subprocess.run([sys.executable, "-c", code, ck, tests_dir], capture_output=True, text=True, timeout=120,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    full = _soseleto(target_grad_decay=0.9)
    train(full, blobs(20, seed=1), blobs(6, seed=2), schedule=SIGNAL_SCHEDULE, seed=0)
    for a, b in zip(torch.load(ck + ".final"), [full.alpha, *full.features.parameters()]):
        assert torch.equal(a, b)


# -- monitors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,in_shape", [("mlp", (4,)), ("bn_convnet", (1, 6, 6))])
def test_monitors_are_recorded_and_do_not_change_the_run(model, in_shape):
    """A monitor evaluates the network (eval mode; BatchNorm running statistics) and draws from the
    global RNG; the run's alpha, weights and losses are those of a run without it."""
    g = torch.Generator().manual_seed(0)
    source = Labeled(torch.randn(20, *in_shape, generator=g), torch.randint(0, 3, (20,), generator=g))
    target = Labeled(torch.randn(6, *in_shape, generator=g), torch.randint(0, 3, (6,), generator=g))
    schedule = Schedule(epochs=2, source_batch=10, target_batch=3)

    def run(with_monitor):
        tr = _soseleto(model=model, in_shape=in_shape)
        monitors = {"target_accuracy": lambda: tr.accuracy(target),
                    "noise": lambda: float(torch.rand(()))} if with_monitor else None
        return tr, train(tr, source, target, schedule=schedule, seed=0, monitors=monitors)

    plain, plain_history = run(False)
    monitored, history = run(True)
    assert [set(h.values) for h in history] == [{"alpha_mean", "target_accuracy", "noise"}] * 2
    assert all(0 <= h.values["target_accuracy"] <= 1 for h in history)
    assert history[-1].values["target_accuracy"] == monitored.accuracy(target)  # after the epoch's last step
    for a, b in zip(_state(monitored), _state(plain)):
        assert torch.equal(a, b)
    for a, b in zip(monitored.features.buffers(), plain.features.buffers()):
        assert torch.equal(a, b)
    assert [(h.loss_source, h.loss_target, h.values["alpha_mean"]) for h in history] == \
        [(h.loss_source, h.loss_target, h.values["alpha_mean"]) for h in plain_history]


def test_monitors_survive_resume(tmp_path):
    source, target = _data()
    ck, count = tmp_path / "run.ckpt", []

    def monitor():
        count.append(1)
        if len(count) == 3:
            raise _Killed
        return float(len(count))

    with pytest.raises(_Killed):
        train(Recorder(), source, target, schedule=Schedule(4, 4, 3), seed=0, checkpoint=ck, identity=IDENTITY,
              monitors={"calls": monitor})
    count.clear()
    history = train(Recorder(), source, target, schedule=Schedule(4, 4, 3), seed=0, checkpoint=ck,
                    identity=IDENTITY, monitors={"calls": lambda: -1.0})
    assert [h.values["calls"] for h in history] == [1.0, 2.0, -1.0, -1.0]


# -- divergence -----------------------------------------------------------------------------------
def test_check_finite_names_the_epoch_and_the_quantity():
    check_finite(EpochStats(1, 0.5, None, {"alpha_mean": 1.0}))
    with pytest.raises(FloatingPointError, match=r"epoch 3: loss_target = nan"):
        check_finite(EpochStats(3, 0.5, float("nan")))
    with pytest.raises(FloatingPointError, match=r"epoch 2: loss_source = inf"):
        check_finite(EpochStats(2, math.inf, 0.1))
    with pytest.raises(FloatingPointError, match=r"epoch 7: alpha_mean = nan"):
        check_finite(EpochStats(7, 0.5, 0.1, {"alpha_mean": float("nan")}))


class Diverging(Recorder):
    def __init__(self, at_step, which):
        super().__init__()
        self.at_step, self.which = at_step, which

    def step(self, xs, ys, idx, xt, yt):
        loss_s, loss_t = super().step(xs, ys, idx, xt, yt)
        if len(self.calls) == self.at_step:
            loss_s, loss_t = (torch.full_like(loss_s, math.inf), loss_t) if self.which == "source" else (loss_s, loss_t * math.nan)
        return loss_s, loss_t


@pytest.mark.parametrize("which,quantity", [("source", "loss_source = inf"), ("target", "loss_target = nan")])
def test_a_diverged_epoch_stops_the_run_before_its_checkpoint(tmp_path, which, quantity):
    source, target = _data()
    ck = tmp_path / "run.ckpt"
    with pytest.raises(FloatingPointError, match=f"training diverged at epoch 2: {quantity}"):
        train(Diverging(7, which), source, target, schedule=Schedule(4, 4, 3), seed=0, checkpoint=ck,
              identity=IDENTITY)  # 5 steps per epoch: step 7 is in epoch 2
    assert torch.load(ck, weights_only=False)["epoch"] == 1


# -- progress -------------------------------------------------------------------------------------
def test_progress_lines_every_log_every_epochs_with_eta(caplog):
    caplog.set_level(logging.INFO, logger="soseleto.core.loop")
    train(Recorder(), blobs(10, seed=0), blobs(4, seed=1), schedule=Schedule(5, 5, 2, log_every=2), seed=0,
          monitors={"acc": lambda: 0.5}, name="demo")
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split("  ")[0] for line in lines] == [f"demo: epoch {e}/5" for e in (1, 2, 4, 5)]
    assert all("loss_source" in line and "loss_target" in line and "acc 0.5000" in line and "ETA" in line
               for line in lines)


def test_monitors_are_evaluated_at_the_reported_epochs_only():
    calls = []
    hist = train(Recorder(), blobs(10, seed=0), blobs(4, seed=1), schedule=Schedule(7, 5, 2, log_every=3), seed=0,
                 monitors={"acc": lambda: calls.append(1) or 0.5})
    assert [h.epoch for h in hist if "acc" in h.values] == [1, 3, 6, 7] and len(calls) == 4


def test_plain_sgd_runs_through_the_loop_without_a_target():
    with seeded(0):
        f, d = build_features("mlp", (4,), hidden=8)
        h = build_classifier(d, 3)
    history = train(PlainSGD(f, h, plain_config(lr_p=0.1)), blobs(20, seed=0), None,
                    schedule=Schedule(2, 5, None), seed=0)
    assert [h.loss_target for h in history] == [None, None] and all(math.isfinite(h.loss_source) for h in history)
