"""``soseleto fit`` end to end on small .npz sets written here, and its refusals."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

import soseleto
from soseleto import cli
from soseleto.config import SoseletoConfig
from soseleto.experiments.fit import load_fitted


def _images(n, n_classes, *, seed, shape=(8, 8)):
    """Learnable images: a bright square whose position is the class, plus noise. uint8 (N, H, W)."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = g.integers(0, 60, (n, *shape))
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2, 1:5] += 180
    return x.astype(np.uint8), y


def _write(path, x, y, **arrays):
    np.savez(path, x=x, y=y, **arrays) if x is not None else np.savez(path, y=y, **arrays)
    return str(path)


@pytest.fixture
def sets(tmp_path):
    """Noisy source (every 4th label rotated), clean target and test; 3 classes, 8x8 gray."""
    xs, ys = _images(96, 3, seed=0)
    flipped = np.arange(96) % 4 == 0
    ys = np.where(flipped, (ys + 1) % 3, ys)
    return {
        "source": _write(tmp_path / "source.npz", xs, ys),
        "target": _write(tmp_path / "target.npz", *_images(24, 3, seed=1)),
        "test": _write(tmp_path / "test.npz", *_images(60, 3, seed=2)),
        "flipped": flipped,
    }


def _fit(sets, out, *extra, mode="noisy"):
    return cli.main(["fit", "--mode", mode, "--source", sets["source"], "--target", sets["target"],
                     "--test", sets["test"], "--out", str(out), "--epochs", "3", "--batch-size", "32",
                     "--target-batch-size", "12", "--device", "cpu", *extra])


def test_noisy_mode_writes_weights_model_and_metrics(sets, tmp_path, capsys):
    out = tmp_path / "fit"
    assert _fit(sets, out) == 0
    printed, err = capsys.readouterr()
    assert "fit: epoch 1/3" in err and "fit: epoch 3/3" in err and "target_accuracy" in err  # progress per epoch

    w = pd.read_csv(out / "weights.csv")
    assert list(w.columns) == ["index", "label", "alpha", "final_loss", "rank"] and len(w) == 96
    assert w["rank"].tolist() == list(range(1, 97))  # rows in rank order, most suspect first
    assert sorted(w["index"]) == list(range(96))
    assert (w["label"] == np.load(sets["source"])["y"][w["index"]]).all()
    assert w["alpha"].between(0, 1.1).all() and (w["final_loss"] >= 0).all()
    assert (w["alpha"].diff().dropna() >= 0).all()  # rank 1 = lowest alpha
    assert not np.allclose(w["alpha"], 1.0)  # alpha moved
    assert (out / "weights.csv.provenance.json").exists()

    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "noisy" and m["n_source"] == 96 and m["n_test"] == 60 and len(m["history"]) == 3
    assert 0 <= m["test_accuracy"] <= 1 and m["provenance"]["config"]["source"] == sets["source"]
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    assert m["history"][-1]["test_accuracy"] == m["test_accuracy"] and "alpha_mean" in m["history"][0]
    assert m["alpha"]["tie_break"] == "final_loss" and m["warnings"] == []
    assert not (out / ".resume.pt").exists() and not (out / ".lock").exists()  # only the outputs stay
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.pt", "weights.csv",
                                                     "weights.csv.provenance.json"]

    # auto on 8x8 gray images: LeNet on them scaled up to 28x28, which model.pt keeps for predict
    assert m["model"] == "lenet" and "lenet, with the 8x8 images scaled up to 28x28" in err
    model = soseleto.load(out / "model.pt")  # the saved model gives the reported accuracy
    assert model.in_shape == (1, 28, 28) and model.model_size == (28, 28) and model.labels.tolist() == [0, 1, 2]
    assert (model.predict(sets["test"]) == np.load(sets["test"])["y"]).sum() == round(m["test_accuracy"] * 60)
    assert f"test accuracy: {m['test_accuracy']:.2%}  target accuracy: {m['target_accuracy']:.2%}" in printed


def test_flipped_labels_get_the_lowest_weights_reproducibly(sets, tmp_path):
    learn = ("--model", "mlp", "--lr", "0.1", "--lr-alpha", "300", "--epochs", "12")
    assert _fit(sets, tmp_path / "a", *learn) == 0
    assert _fit(sets, tmp_path / "b", *learn) == 0
    a, b = (pd.read_csv(tmp_path / d / "weights.csv") for d in "ab")
    pd.testing.assert_frame_equal(a, b)  # same seed, same weights
    flipped = sets["flipped"]
    alpha = a.set_index("index")["alpha"].sort_index().to_numpy()  # by source row
    assert alpha[flipped].mean() < 0.2 < 1.0 < alpha[~flipped].mean()
    assert flipped[a["index"][: flipped.sum()]].mean() > 0.9  # most suspect (first rows) = flipped


def test_transfer_mode_has_its_own_head_and_class_subsets(tmp_path):
    # source: 3 classes; target and test: classes 3, 4 of a 5-class file, renumbered 0, 1
    src = _write(tmp_path / "s.npz", *_images(60, 3, seed=0))
    t = _write(tmp_path / "t.npz", *_images(30, 5, seed=1))
    e = _write(tmp_path / "e.npz", *_images(30, 5, seed=2))
    out = tmp_path / "fit"
    sets = {"source": src, "target": t + ":3,4", "test": e + ":3,4"}
    assert _fit(sets, out, "--epochs", "2", "--target-per-class", "4", mode="transfer") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["mode"], m["n_source_classes"], m["n_target_classes"], m["n_target"], m["n_test"]) == ("transfer", 3, 2, 8, 12)
    features, head, _ = load_fitted(out / "model.pt")
    assert head.out_features == 2


def test_cli_defaults_are_the_soseleto_config_defaults():
    import argparse

    parser = argparse.ArgumentParser()
    cli.fit_arguments(parser)
    args = parser.parse_args(["--source", "s", "--target", "t", "--mode", "noisy", "--out", "o"])
    defaults = SoseletoConfig()
    for flag, name in cli.TRAINER_FLAGS.items():
        assert getattr(args, name) == getattr(defaults, name), flag
    assert (args.model, args.seed, args.device, args.flag_threshold) == ("auto", 0, "auto", 0.1)


def _bad(tmp_path, sets, **change):
    return {**sets, **{k: v(tmp_path) if callable(v) else v for k, v in change.items()}}


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"target": lambda p: str(p / "missing.npz")}, "missing.npz"),  # missing file
        ({"target": lambda p: _write(p / "k.npz", None, np.zeros(4), images=np.zeros((4, 8, 8), np.uint8))},
         "missing array(s) ['x']; found ['images', 'y']"),  # wrong keys
        ({"test": lambda p: _write(p / "big.npz", *_images(10, 3, seed=3, shape=(12, 12)))},
         "mismatched image shapes"),
        ({"target": lambda p: _write(p / "t5.npz", *_images(10, 5, seed=3))}, "label 3 (sample 3) is outside the 3 classes"),
        ({"target": lambda p: _write(p / "empty.npz", np.zeros((0, 8, 8), np.uint8), np.zeros(0, np.int64))},
         "the set is empty"),
        ({"target": lambda p: _write(p / "t.npz", *_images(10, 2, seed=3)) + ":2"}, "classes [2] are not labels"),
        ({"source": "mnist:train"}, "MNIST/raw/train-images-idx3-ubyte"),  # torchvision set absent, no download
    ],
    ids=["missing-file", "wrong-keys", "shapes", "labels-out-of-range", "empty-target", "empty-class", "no-download"],
)
def test_bad_input_is_refused_before_training(sets, tmp_path, capsys, change, needle):
    out = tmp_path / "fit"
    bad = _bad(tmp_path, sets, **change)
    assert _fit(bad, out, "--data-dir", str(tmp_path / "tv")) == 2
    err = capsys.readouterr().err
    assert "soseleto: error:" in err and needle in err
    assert "epoch" not in err and not out.exists()  # nothing trained, nothing written


def test_test_labels_must_be_target_classes_in_transfer_mode(sets, tmp_path, capsys):
    bad = {**sets, "target": sets["target"] + ":0,1"}  # target has 2 classes, test has 3
    assert _fit(bad, tmp_path / "fit", mode="transfer") == 2
    assert "outside the 2 classes of the target" in capsys.readouterr().err


def test_bad_hyper_parameter_is_named(sets, tmp_path, capsys):
    assert _fit(sets, tmp_path / "fit", "--lr", "-1") == 2
    assert "lr_p=-1.0 is invalid" in capsys.readouterr().err


def test_image_folder_source_adds_the_path_column(tmp_path):
    from PIL import Image

    x, y = _images(12, 2, seed=0)
    for i, (img, label) in enumerate(zip(x, y)):
        (tmp_path / "src" / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "src" / f"class{label}" / f"{i:02d}.png")
    sets = {"source": str(tmp_path / "src"), "target": _write(tmp_path / "t.npz", *_images(6, 2, seed=1)),
            "test": _write(tmp_path / "e.npz", *_images(6, 2, seed=2))}
    assert _fit(sets, tmp_path / "fit", "--epochs", "1") == 0
    w = pd.read_csv(tmp_path / "fit/weights.csv")
    assert list(w.columns) == ["index", "label", "alpha", "final_loss", "rank", "path"]
    row = w.set_index("index").loc[0]
    assert row["path"].endswith("class0/00.png") and row["label"] == 0


def test_true_labels_score_alpha_as_a_detector(sets, tmp_path):
    x, y_true = _images(96, 3, seed=0)  # the source before its labels were rotated
    true = _write(tmp_path / "true.npz", x, y_true)
    learn = ("--model", "mlp", "--lr", "0.1", "--lr-alpha", "300", "--epochs", "12")
    assert _fit(sets, tmp_path / "fit", *learn, "--true-labels", true, "--flag-threshold", "0.2") == 0
    d = json.loads((tmp_path / "fit/metrics.json").read_text())["detection"]
    assert d["n_noisy"] == sets["flipped"].sum() == 24 and d["threshold"] == 0.2
    assert d["auroc"] > 0.9 and d["average_precision"] > 0.5 and 0 <= d["f1"] <= 1
    w = pd.read_csv(tmp_path / "fit/weights.csv")
    assert list(w.columns) == ["index", "label", "alpha", "final_loss", "rank", "true_label", "suspect"]
    assert (w["true_label"] == y_true[w["index"]]).all() and (w["suspect"] == (w["alpha"] < 0.2)).all()
    assert d["n_flagged"] == w["suspect"].sum()


def test_true_labels_follow_the_class_subset(sets, tmp_path):
    np.save(tmp_path / "true.npy", _images(96, 3, seed=0)[1])  # one label per row of the file
    subset = {k: sets[k] + ":1,2" for k in ("source", "target", "test")}
    assert _fit(subset, tmp_path / "fit", "--epochs", "1", "--true-labels", str(tmp_path / "true.npy")) == 0
    w = pd.read_csv(tmp_path / "fit/weights.csv")
    assert len(w) == 64 and set(w["label"]) == {1, 2}  # the labels as given in the file
    assert (w["true_label"] == _images(96, 3, seed=0)[1][w["index"]]).all()


@pytest.mark.parametrize("labels,needle", [(np.zeros(95, np.int64), "has 95 labels but the source"),
                                           (np.zeros(96, np.float32), "1-D integer array")])
def test_bad_true_labels_are_refused_before_training(sets, tmp_path, capsys, labels, needle):
    np.save(tmp_path / "true.npy", labels)
    out = tmp_path / "fit"
    assert _fit(sets, out, "--true-labels", str(tmp_path / "true.npy")) == 2
    err = capsys.readouterr().err
    assert needle in err and "true.npy" in err
    assert "epoch" not in err and not out.exists()  # nothing trained, nothing written


# -- daily use: resume, lock, --out, ties, safe model file ---------------------------------------
def _problem(sets, **kw):
    from soseleto import logs
    from soseleto.experiments import fit

    logs.setup()  # log to this test's stderr

    return fit.prepare(sets["source"], sets["target"], sets["test"], mode="noisy", **kw)


def _cfg(epochs=5):
    return SoseletoConfig(epochs=epochs, source_batch=32, target_batch=12)


def test_a_killed_run_resumes_to_the_same_result_bit_for_bit(sets, tmp_path, capsys):
    from soseleto.experiments import fit

    fit.fit_problem(_problem(sets), tmp_path / "whole", cfg=_cfg(), device="cpu")

    def kill_after_epoch_2(stats):
        if stats.epoch == 2:
            raise KeyboardInterrupt("killed")

    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        fit.fit_problem(_problem(sets), out, cfg=_cfg(), device="cpu", on_epoch=kill_after_epoch_2)
    assert (out / ".resume.pt").exists() and not (out / "weights.csv").exists() and not (out / ".lock").exists()
    capsys.readouterr()
    fit.fit_problem(_problem(sets), out, cfg=_cfg(), device="cpu")  # the same command again
    err = capsys.readouterr().err
    assert "resuming the unfinished run" in err and "after epoch 2/5" in err
    assert "fit: epoch 1/5" not in err and "fit: epoch 3/5" in err
    assert not (out / ".resume.pt").exists()
    pd.testing.assert_frame_equal(pd.read_csv(out / "weights.csv"), pd.read_csv(tmp_path / "whole/weights.csv"))
    a, b = (torch.load(d / "model.pt", weights_only=True) for d in (out, tmp_path / "whole"))
    for part in ("features", "source_head"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in b[part])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (out, tmp_path / "whole"))
    assert [h["loss_source"] for h in ma["history"]] == [h["loss_source"] for h in mb["history"]]


def test_a_resume_file_of_other_settings_is_refused(sets, tmp_path, capsys):
    from soseleto.experiments import fit

    def kill(stats):
        raise KeyboardInterrupt

    out = tmp_path / "fit"
    with pytest.raises(KeyboardInterrupt):
        fit.fit_problem(_problem(sets), out, cfg=_cfg(), device="cpu", on_epoch=kill)
    before = sorted(p.name for p in out.iterdir())
    capsys.readouterr()
    assert _fit(sets, out, "--seed", "1") == 2
    err = capsys.readouterr().err
    assert f"--out {str(out)!r} holds an unfinished run of other settings or data" in err
    assert "seed: 0 vs 1" in err and "fit: epoch" not in err
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written, the old state kept


@pytest.mark.parametrize("name", ["weights.npz", "run.csv", "model.pt", "m.json"])
def test_an_out_that_looks_like_a_file_is_refused(sets, tmp_path, capsys, name):
    assert _fit(sets, tmp_path / name) == 2
    err = capsys.readouterr().err
    assert f"--out {str(tmp_path / name)!r} looks like a file name" in err and "is a folder" in err
    assert not (tmp_path / name).exists()


def test_an_out_that_is_a_file_is_refused(sets, tmp_path, capsys):
    (tmp_path / "out").write_text("mine")
    assert _fit(sets, tmp_path / "out") == 2
    assert f"--out {str(tmp_path / 'out')!r} is an existing file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "mine"


_HOLD = """
import sys, time
from pathlib import Path
from soseleto.experiments import fit_session as fs
with fs.out_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_into_the_same_out_is_refused(sets, tmp_path, capsys):
    import signal
    import subprocess
    import sys

    out = tmp_path / "fit"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # as a running soseleto fit holds it
        assert _fit(sets, out) == 2
        err = capsys.readouterr().err
        assert f"is in use by another soseleto fit (PID {holder.pid}" in err and "fit: epoch" not in err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: the kernel releases its lock, its file stays
        holder.wait()
    assert _fit(sets, out, "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock {out / '.lock'} (its process {holder.pid} no longer holds it)" in err
    assert (out / "weights.csv").exists() and not (out / ".lock").exists()


def test_a_full_disk_while_writing_leaves_no_output_and_resumes(sets, tmp_path, capsys, monkeypatch):
    import errno

    from soseleto.experiments import fit

    real = fit.write_json

    def full(obj, path, **kw):
        if not obj.get("history"):  # the rehearsal before training writes: the final write fails
            return real(obj, path, **kw)
        with open(path, "w") as f:
            f.write('{"half": ')  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fit, "write_json", full)
    out = tmp_path / "fit"
    assert _fit(sets, out) == 1
    err = capsys.readouterr().err
    assert "no space left on the device while writing the outputs" in err and "none of them was written" in err
    assert sorted(p.name for p in out.iterdir()) == [".resume.pt"]  # no partial file, the trained state kept
    monkeypatch.undo()
    assert _fit(sets, out) == 0  # space again: only the outputs are written
    err = capsys.readouterr().err
    assert "resuming the unfinished run" in err and "fit: epoch 1/3" not in err
    assert json.loads((out / "metrics.json").read_text())["n_source"] == 96


def _fill_after(disk, epoch):
    def on_epoch(stats):
        if stats.epoch == epoch:
            disk.fill()
    return on_epoch


def test_a_really_full_disk_keeps_the_last_resume_file(sets, tmp_path, small_disk):
    """On a real 3 MiB tmpfs: the disk fills after epoch 2, so epoch 3's resume save fails; the
    file of epoch 2 is kept, and with space again the run resumes from it to the uninterrupted result."""
    from soseleto.experiments import fit

    small = {"model": "mlp"}  # a network whose resume file fits the 3 MiB disk twice
    fit.fit_problem(_problem(sets), tmp_path / "whole", cfg=_cfg(4), device="cpu", **small)
    out = small_disk.path / "fit"
    with pytest.raises(OSError, match=r"no space left on the device while saving the state of fit after epoch 3 to "
                       r".*\.resume\.pt'; the state saved after epoch 2 is kept there") as err:
        fit.fit_problem(_problem(sets), out, cfg=_cfg(4), device="cpu", on_epoch=_fill_after(small_disk, 2), **small)
    assert err.value.errno == 28
    assert sorted(p.name for p in out.iterdir()) == [".resume.pt"]  # no temporary file, no lock
    assert len(torch.load(out / ".resume.pt", weights_only=True)["history"]) == 2
    small_disk.empty()
    fit.fit_problem(_problem(sets), out, cfg=_cfg(4), device="cpu", **small)
    pd.testing.assert_frame_equal(pd.read_csv(out / "weights.csv"), pd.read_csv(tmp_path / "whole/weights.csv"))


def test_a_really_full_disk_at_the_final_write(sets, tmp_path, small_disk, capsys):
    from soseleto.experiments import fit

    out = small_disk.path / "fit"
    with pytest.raises(OSError, match="while writing the outputs into .*none of them was written"):
        fit.fit_problem(_problem(sets), out, cfg=_cfg(3), device="cpu", on_epoch=_fill_after(small_disk, 3), model="mlp")
    assert sorted(p.name for p in out.iterdir()) == [".resume.pt"]
    small_disk.empty()
    capsys.readouterr()
    assert _fit(sets, out, "--model", "mlp") == 0  # the same command: resumes after the last epoch and only writes
    err = capsys.readouterr().err
    assert "after epoch 3/3" in err and "fit: epoch" not in err and (out / "weights.csv").exists()


def test_a_disk_full_from_the_start_trains_nothing(sets, small_disk, capsys):
    small_disk.fill()
    out = small_disk.path / "fit"
    assert _fit(sets, out) == 1
    err = capsys.readouterr().err
    assert "no space left on the device for the outputs in" in err and "nothing was trained" in err
    assert "fit: epoch" not in err and not out.exists()


def test_ties_at_alpha_zero_are_ranked_by_the_final_loss(sets, tmp_path):
    learn = ("--model", "mlp", "--lr", "0.1", "--lr-alpha", "300", "--epochs", "12")
    assert _fit(sets, tmp_path / "fit", *learn) == 0
    w = pd.read_csv(tmp_path / "fit/weights.csv")
    m = json.loads((tmp_path / "fit/metrics.json").read_text())
    at_zero = w[w["alpha"] == 0]
    assert len(at_zero) == m["alpha"]["n_at_min"] > 1  # many ties at the clip floor, counted
    assert at_zero["rank"].tolist() == list(range(1, len(at_zero) + 1))
    assert (at_zero["final_loss"].diff().dropna() <= 0).all()  # within a tie: highest loss first
    assert at_zero["final_loss"].nunique() > 1  # the tie-break carries information


def test_model_file_holds_plain_values_and_a_pickled_callable_is_refused(sets, tmp_path):
    assert _fit(sets, tmp_path / "fit", "--epochs", "1") == 0
    state = torch.load(tmp_path / "fit/model.pt", weights_only=True)  # loads with only tensors and plain types
    assert type(state["provenance"]["torch_version"]) is str
    bad = tmp_path / "evil.pt"
    torch.save({**state, "hook": print}, bad)  # a pickled callable
    with pytest.raises(ValueError, match=r"evil\.pt' is not a plain checkpoint .*refusing to load it"):
        load_fitted(bad)


def test_metrics_json_is_strict_json(sets, tmp_path):
    assert _fit(sets, tmp_path / "fit", "--epochs", "1", "--test", sets["test"]) == 0

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    m = json.loads((tmp_path / "fit/metrics.json").read_text(), parse_constant=refuse)
    assert m["epochs"] == 1


def test_threads_and_the_first_line(sets, tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert _fit(sets, tmp_path / "fit", "--epochs", "1", "--threads", "1") == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if "fit (noisy mode)" in line)
    assert err.index(first) < err.index("fit: epoch 1/1")  # before the first epoch ends
    for part in ("96 source, 24 target, 60 test samples", "3 source classes", "3 steps per epoch x 1 epochs",
                 "device cpu, 1 CPU threads"):
        assert part in first
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["fit", "--mode", "noisy", "--source", "s", "--target", "t", "--out", "o",
                                       "--threads", "0"])


def test_a_run_stopped_under_one_thread_count_resumes_only_under_it(sets, tmp_path, capsys):
    from soseleto.experiments import fit

    def kill(stats):
        raise KeyboardInterrupt

    before = torch.get_num_threads()
    out = tmp_path / "fit"
    try:
        torch.set_num_threads(1)
        with pytest.raises(KeyboardInterrupt):
            fit.fit_problem(_problem(sets), out, cfg=_cfg(3), device="cpu", on_epoch=kill)
        capsys.readouterr()
        assert _fit(sets, out, "--threads", "2") == 2
        err = capsys.readouterr().err
        assert f"--out {str(out)!r} holds an unfinished run started with threads 1 (now 2)" in err
        assert "with the same command --threads 1" in err and "fit: epoch" not in err
        assert sorted(p.name for p in out.iterdir()) == [".resume.pt"]  # refused before anything was written
        assert _fit(sets, out, "--threads", "1") == 0
        assert "after epoch 1/3" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_a_target_covering_some_source_classes_is_a_warning(sets, tmp_path, capsys):
    t = _write(tmp_path / "t01.npz", *_images(24, 3, seed=1))
    bad = {**sets, "target": t + ":0,1"}  # renumbered 0, 1: a target without class 2
    assert _fit(bad, tmp_path / "fit", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "WARNING" in err and "covers only 2 of the source's 3 classes (none of [2])" in err
    assert "covers only 2 of" in json.loads((tmp_path / "fit/metrics.json").read_text())["warnings"][0]


# -- hostile and odd inputs: a clear error naming the problem, nothing written --------------------
def _folder(root, sizes, *, seed=0):
    """An ImageFolder of two classes, one 8x8 gray image per entry of ``sizes`` ((H, W) each)."""
    from PIL import Image

    g = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(g.integers(0, 255, (h, w), dtype=np.uint8)).save(root / f"c{i % 2}" / f"{i:02d}.png")
    return str(root)


def _object_npz(p):
    np.savez(p / "obj.npz", x=np.array([np.zeros((8, 8)), "a string"], dtype=object), y=np.array([0, 1]))
    return str(p / "obj.npz")


def _nan_npz(p):
    x = _images(24, 3, seed=1)[0].astype(np.float32)
    x[5, 2, 3] = np.nan
    return _write(p / "nan.npz", x, _images(24, 3, seed=1)[1])


def _orphan_class(p):
    x, y = _images(96, 3, seed=0)
    return _write(p / "src.npz", x[y != 1], y[y != 1])  # labels 0 and 2: class 1 has no source sample


def _symlink_loop(p):
    root = _folder(p / "loop", [(8, 8)] * 4)
    (p / "loop/c0/self.png").symlink_to(p / "loop/c0/self.png")
    return root


def _other_size(p):
    return _folder(p / "sizes", [(8, 8), (8, 8), (9, 8), (8, 8)])


@pytest.mark.parametrize("change,needle", [
    ({"target": _object_npz}, "array 'x' holds Python objects (dtype=object)"),
    ({"target": _nan_npz}, "x has 1 NaN or infinite pixel(s), the first in image 5"),
    ({"source": _orphan_class}, "has class(es) [1] but the source"),
    ({"source": _other_size}, "sizes/c0/02.png' has shape (9, 8, 1)"),
    ({"source": _symlink_loop}, "self.png' is a symbolic link that loops or points nowhere"),
], ids=["object-array", "nan-pixels", "target-class-not-in-source", "image-of-another-size", "symlink-loop"])
def test_hostile_input_is_refused_before_training(sets, tmp_path, capsys, change, needle):
    out = tmp_path / "fit"
    bad = _bad(tmp_path, sets, **change)
    if change.get("source") in (_other_size, _symlink_loop):  # 2-class folders: matching 2-class target and test
        bad = {**bad, "target": sets["target"] + ":0,1", "test": sets["test"] + ":0,1"}
    assert _fit(bad, out) == 2
    err = capsys.readouterr().err
    assert "soseleto: error:" in err and needle in err, err
    assert "epoch" not in err and not out.exists()


def test_an_unreadable_image_is_named(sets, tmp_path, capsys, monkeypatch):
    import PIL.Image

    root = _folder(tmp_path / "src", [(8, 8)] * 4)
    locked = tmp_path / "src/c1/01.png"
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads any file whatever its mode: make the read fail as chmod 000 would
        real = PIL.Image.open

        def deny(f, *a, **kw):
            if str(f) == str(locked):
                raise PermissionError(13, "Permission denied", str(f))
            return real(f, *a, **kw)

        monkeypatch.setattr(PIL.Image, "open", deny)
    bad = {"source": root, "target": sets["target"] + ":0,1", "test": sets["test"] + ":0,1"}
    try:
        assert _fit(bad, tmp_path / "fit") == 2
    finally:
        locked.chmod(0o644)
    err = capsys.readouterr().err
    assert f"cannot read image {str(locked)!r}" in err and "Permission denied" in err
    assert not (tmp_path / "fit").exists()


def test_an_image_of_another_size_is_resized_with_size(sets, tmp_path):
    bad = {"source": _other_size(tmp_path), "target": sets["target"] + ":0,1", "test": sets["test"] + ":0,1"}
    assert _fit(bad, tmp_path / "fit", "--size", "8", "--epochs", "1") == 0
    assert len(pd.read_csv(tmp_path / "fit/weights.csv")) == 4


def test_float_pixels_in_0_1_are_the_uint8_images(sets, tmp_path):
    x, y = np.load(sets["target"])["x"], np.load(sets["target"])["y"]
    as_float = {**sets, "target": _write(tmp_path / "f.npz", x.astype(np.float64) / 255, y)}
    assert _fit(sets, tmp_path / "a", "--epochs", "1") == 0
    assert _fit(as_float, tmp_path / "b", "--epochs", "1") == 0
    a, b = (pd.read_csv(tmp_path / d / "weights.csv") for d in "ab")
    pd.testing.assert_frame_equal(a, b)


def test_one_sample_classes_run_with_a_warning(sets, tmp_path, capsys):
    x, y = _images(24, 3, seed=1)
    keep = (y != 2) | (np.arange(24) == 2)  # one target image of class 2
    src_x, src_y = np.load(sets["source"])["x"], np.load(sets["source"])["y"]
    one = (src_y != 1) | (np.arange(96) == 1)  # one source image of class 1
    odd = {**sets, "target": _write(tmp_path / "t1.npz", x[keep], y[keep]),
           "source": _write(tmp_path / "s1.npz", src_x[one], src_y[one])}
    assert _fit(odd, tmp_path / "fit", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert "has a single sample of class(es) [2]" in err
    assert "single sample" in json.loads((tmp_path / "fit/metrics.json").read_text())["warnings"][0]


def test_sigterm_mid_epoch_resumes_bit_for_bit(sets, tmp_path, monkeypatch):
    import signal

    from soseleto.core.soseleto import Soseleto
    from soseleto.experiments import fit

    fit.fit_problem(_problem(sets), tmp_path / "whole", cfg=_cfg(3), device="cpu")
    real, calls = Soseleto.step, []

    def step(self, *batch):
        calls.append(1)
        if len(calls) == 5:  # in epoch 2 (3 steps per epoch): as SLURM's time limit would
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *batch)

    monkeypatch.setattr(Soseleto, "step", step)
    out = tmp_path / "killed"
    with pytest.raises(SystemExit) as info:
        fit.fit_problem(_problem(sets), out, cfg=_cfg(3), device="cpu")
    assert info.value.code == 143 and sorted(p.name for p in out.iterdir()) == [".resume.pt"]  # lock released
    monkeypatch.undo()
    fit.fit_problem(_problem(sets), out, cfg=_cfg(3), device="cpu")
    pd.testing.assert_frame_equal(pd.read_csv(out / "weights.csv"), pd.read_csv(tmp_path / "whole/weights.csv"))


def _source_folder(root, sets):
    """The fixture's noisy source written as an ImageFolder (one PNG per sample, labels as given)."""
    from PIL import Image

    with np.load(sets["source"]) as z:
        x, y = z["x"], z["y"]
    for i, (img, label) in enumerate(zip(x, y)):
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"class{label}" / f"{i:03d}.png")
    return str(root)


def test_a_streamed_source_gives_the_in_memory_result(sets, tmp_path):
    folder = {**sets, "source": _source_folder(tmp_path / "src", sets)}
    # --size: a streamed source is decoded at the size LeNet takes (auto would scale it up after reading)
    assert _fit(folder, tmp_path / "memory", "--size", "28") == 0
    assert _fit(folder, tmp_path / "stream", "--size", "28", "--stream", "--workers", "2") == 0
    memory, streamed = (pd.read_csv(tmp_path / d / "weights.csv") for d in ("memory", "stream"))
    pd.testing.assert_frame_equal(memory, streamed)  # same alpha, loss, rank and path for every sample
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("memory", "stream"))
    assert a["test_accuracy"] == b["test_accuracy"] and a["alpha"] == b["alpha"]


def test_only_an_image_folder_streams(sets, tmp_path, capsys):
    assert _fit(sets, tmp_path / "fit", "--stream") == 2
    assert "only an ImageFolder can be streamed" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()
    folder = {**sets, "source": _source_folder(tmp_path / "src", sets)}
    assert _fit(folder, tmp_path / "fit", "--stream") == 2
    assert ("model auto would scale the 8x8 images of the streamed source up to 28x28 for lenet; give --size 28x28"
            in capsys.readouterr().err)
    assert not (tmp_path / "fit").exists()


def test_a_named_network_the_images_are_too_small_for_is_refused(sets, tmp_path, capsys):
    assert _fit(sets, tmp_path / "fit", "--model", "lenet") == 2
    err = capsys.readouterr().err
    assert "model lenet needs images of at least 16x16 pixels, but these are 8x8" in err and "Traceback" not in err
    assert not (tmp_path / "fit").exists()
    assert _fit(sets, tmp_path / "sized", "--model", "lenet", "--size", "16", "--epochs", "1") == 0
    model = soseleto.load(tmp_path / "sized" / "model.pt")
    assert model.in_shape == (1, 16, 16) and model.size == (16, 16) and model.model_size is None


def test_a_run_that_does_not_learn_ends_with_a_loud_warning(sets, tmp_path, capsys):
    out = tmp_path / "fit"
    x, y = _images(60, 3, seed=2)
    shuffled = {**sets, "test": _write(tmp_path / "shuffled.npz", x, np.random.default_rng(0).permutation(y))}
    assert _fit(shuffled, out, "--lr", "1e-7", "--lr-alpha", "0", "--epochs", "2") == 0  # learns nothing
    err = capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["warnings"]) == 2
    assert m["warnings"][0].startswith("the source loss never left chance level") and "ln 3 = 1.099" in m["warnings"][0]
    assert m["warnings"][1].startswith(f"the test accuracy {m['test_accuracy']:.2%} is at chance level")
    last = err.strip().splitlines()[-2:]  # the last lines of the log
    assert all("WARNING" in line and "DID NOT LEARN" in line for line in last)


@pytest.mark.slow
def test_real_8x8_digits_with_flipped_labels_are_learned_with_the_example_flags(tmp_path):
    """scikit-learn's 8x8 digits, 30% of the source labels flipped: the README's command, nothing more."""
    from builders import noisy_digits

    d = noisy_digits(tmp_path, seed=0)
    out = tmp_path / "fit"
    assert cli.main(["fit", "--mode", "noisy", "--source", d["source"], "--target", d["target"], "--test", d["test"],
                     "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["model"] == "lenet" and m["test_accuracy"] >= 0.9 and m["warnings"] == []
    y = np.load(d["test"])["y"]
    assert (soseleto.load(out / "model.pt").predict(d["test"]) == y).sum() == round(m["test_accuracy"] * len(y))


def test_a_damaged_resume_file_is_named_as_unreadable(sets, tmp_path, capsys):
    out = tmp_path / "fit"
    out.mkdir()
    (out / ".resume.pt").write_bytes(b"PK\x03\x04 a damaged zip")
    assert _fit(sets, out) == 2
    err = capsys.readouterr().err
    assert f"--out {str(out)!r} holds a resume file that cannot be read" in err and "delete it" in err
    assert "other settings" not in err and sorted(p.name for p in out.iterdir()) == [".resume.pt"]
