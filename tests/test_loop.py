"""The one epoch loop (:func:`soseleto.core.loop.train`): batches, resume, identity, monitors,
the finite check, history and progress lines."""

import logging
import math

import pytest
import torch

from soseleto.config import Schedule
from soseleto.core.loop import EpochStats, Labeled, check_finite, cycle_batches, train
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import generator, seeded
from soseleto.core.soseleto import Soseleto
from soseleto.methods.plain import PlainSGD

from builders import blobs, soseleto_config


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


def test_identity_is_required_with_a_checkpoint(tmp_path):
    source, target = _data()
    with pytest.raises(ValueError, match="identity"):
        train(Recorder(), source, target, schedule=Schedule(1, 4, 3), seed=0, checkpoint=tmp_path / "run.ckpt")
    assert not (tmp_path / "run.ckpt").exists()


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
    from builders import plain_config

    history = train(PlainSGD(f, h, plain_config(lr_p=0.1)), blobs(20, seed=0), None,
                    schedule=Schedule(2, 5, None), seed=0)
    assert [h.loss_target for h in history] == [None, None] and all(math.isfinite(h.loss_source) for h in history)
