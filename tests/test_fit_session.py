"""The ``--out`` folder, its lock, run identities and the progress bar of ``soseleto fit``
(:mod:`soseleto.experiments.fit_session`)."""

import io
import itertools
import os
import subprocess
import sys

import pytest
import torch

from soseleto.experiments import fit_session as fs


def test_check_out_refuses_files_and_file_names(tmp_path):
    assert fs.check_out(tmp_path / "run") == tmp_path / "run"
    assert fs.check_out(tmp_path) == tmp_path  # an existing folder, whatever its name
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match="is an existing file"):
        fs.check_out(tmp_path / "taken")
    with pytest.raises(ValueError, match=r"looks like a file name \(\.npz\).*--out '.*/x'"):
        fs.check_out(tmp_path / "x.npz")
    (tmp_path / "dir.pt").mkdir()
    assert fs.check_out(tmp_path / "dir.pt") == tmp_path / "dir.pt"  # an existing folder is a folder


def test_lock_is_exclusive_and_removed_with_the_folder_it_created(tmp_path):
    out = tmp_path / "a" / "b"
    with fs.out_lock(out) as lock:
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(ValueError, match=rf"in use by another soseleto fit \(PID {os.getpid()}"), fs.out_lock(out):
            pass
        assert lock.exists()  # the refused second lock did not remove the first
    assert not (tmp_path / "a").exists()  # created by the lock, left empty: removed
    out.mkdir(parents=True)
    with fs.out_lock(out):
        (out / "result.csv").write_text("x")
    assert sorted(p.name for p in out.iterdir()) == ["result.csv"]


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tmp_path.joinpath(fs.LOCK_NAME).write_text(f"{dead.pid}\n")
    with caplog.at_level("WARNING"), fs.out_lock(tmp_path) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert f"taking over the stale lock {tmp_path / fs.LOCK_NAME} (its process {dead.pid} no longer holds it)" in caplog.text
    tmp_path.joinpath(fs.LOCK_NAME).write_text("garbage")  # no PID at all: stale too
    with fs.out_lock(tmp_path):
        pass
    assert not tmp_path.joinpath(fs.LOCK_NAME).exists()


@pytest.mark.parametrize("pid", [os.getpid(), 1], ids=["this-process", "pid-1"])
def test_a_lock_naming_a_live_pid_that_holds_nothing_is_stale(tmp_path, caplog, pid):
    """A PID is reused (in a container the rerun itself may be PID 1): only the kernel lock counts."""
    tmp_path.joinpath(fs.LOCK_NAME).write_text(f"{pid}\n")
    with caplog.at_level("WARNING"), fs.out_lock(tmp_path) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert f"(its process {pid} no longer holds it)" in caplog.text


_HOLD = """
import sys, time
from pathlib import Path
from soseleto.experiments import fit_session as fs
with fs.out_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_sigkilled_holder_releases_the_lock(tmp_path, caplog):
    import signal

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"in use by another soseleto fit \(PID {holder.pid}, lock file"), \
                fs.out_lock(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / fs.LOCK_NAME).read_text().strip() == str(holder.pid)  # left behind by the killed holder
    with caplog.at_level("WARNING"), fs.out_lock(out):
        pass
    assert f"(its process {holder.pid} no longer holds it)" in caplog.text and not (out / fs.LOCK_NAME).exists()


def _race(out, barrier, events):
    import time

    barrier.wait()
    try:
        with fs.out_lock(out):
            start = time.monotonic()
            time.sleep(0.2)
            events.put(("held", start, time.monotonic()))
    except ValueError as err:
        events.put(("refused", str(err), 0.0))
    except BaseException as err:  # noqa: BLE001  (anything else is the failure this test looks for)
        events.put(("crashed", repr(err), 0.0))


def test_racing_processes_never_hold_the_lock_together(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    n, trials = 4, 8
    for trial in range(trials):
        out = tmp_path / f"t{trial}"
        out.mkdir()
        (out / fs.LOCK_NAME).write_text("12345\n")  # a stale lock, as a killed run leaves it
        barrier, events = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(out, barrier, events)) for _ in range(n)]
        for p in procs:
            p.start()
        got = [events.get(timeout=60) for _ in range(n)]
        for p in procs:
            p.join(60)
        assert not [g for g in got if g[0] == "crashed"], got
        held = sorted((a, b) for kind, a, b in got if kind == "held")
        assert held, got  # somebody got it
        assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(held)), held  # never two at once
        assert all("in use by another soseleto fit" in msg for kind, msg, _ in got if kind == "refused")
        assert not (out / fs.LOCK_NAME).exists()


def test_leftovers_of_a_killed_write_are_removed_under_the_lock(tmp_path, caplog):
    (tmp_path / ".staging-999999").mkdir()
    (tmp_path / ".staging-999999/model.pt").write_bytes(b"half")
    (tmp_path / ".metrics.json.abc123.tmp").write_text("{")
    (tmp_path / "mine.txt").write_text("kept")
    with caplog.at_level("WARNING"), fs.out_lock(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    assert "removed" in caplog.text and ".staging-999999" in caplog.text


def test_out_below_a_file_or_on_a_read_only_filesystem_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"lies below .*file'.*which is a file"):
        fs.check_out(tmp_path / "file" / "out")
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True,
                                 check=False)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr!r}")
    else:
        ro.chmod(0o555)
    try:
        with pytest.raises(ValueError, match=r"cannot be written: .*ro' (is on a read-only filesystem|is not writable)"):
            fs.check_out(ro / "out")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=True)
        ro.chmod(0o755)


def test_fingerprint_sees_pixels_labels_and_shapes():
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    base = fs.fingerprint(x, y)
    assert base == fs.fingerprint(x.clone(), y.clone()) and len(base) == 64
    x2 = x.clone()
    x2[3, 0, 1, 1] = 1
    assert len({base, fs.fingerprint(x2, y), fs.fingerprint(x, y.flip(0)), fs.fingerprint(x.view(4, 1, 1, 4), y)}) == 4


class _Method:
    def __init__(self):
        self.steps, self.loaded = 0, None

    def step(self, *batch):
        self.steps += 1
        return torch.tensor(1.0), None

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.loaded = state

    def summary(self):
        return {"alpha_mean": 0.5}


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_counts_steps_and_delegates(monkeypatch):
    monkeypatch.setattr(fs.time, "monotonic", iter(range(0, 1000, 1)).__next__)  # every step redraws
    stream, method = _Terminal(), _Method()
    bar = fs.Progress(method, steps_per_epoch=4, epochs=3, first_epoch=2, stream=stream)
    for _ in range(5):
        assert bar.step(None, None, None, None, None)[0].item() == 1.0
    text = stream.getvalue()
    assert "\rfit: epoch 2/3 [" in text and "1/4 steps" in text and "3/4 steps" in text
    assert "\r\033[K" in text and "epoch 3/3" in text  # cleared at the end of epoch 2, then epoch 3
    assert method.steps == 5 and bar.state_dict() == {"steps": 5} and bar.summary() == {"alpha_mean": 0.5}
    bar.load_state_dict({"steps": 1})
    assert method.loaded == {"steps": 1}
    assert fs.is_terminal(stream) and not fs.is_terminal(io.StringIO())
