"""``soseleto fit`` end to end on small .npz sets written here, and its refusals."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto import cli
from soseleto.config import SoseletoConfig
from soseleto.data.images import to_float
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
    err = capsys.readouterr().err
    assert "fit: epoch 1/3" in err and "fit: epoch 3/3" in err and "target_accuracy" in err  # progress per epoch

    w = pd.read_csv(out / "weights.csv")
    assert list(w.columns) == ["index", "label", "alpha", "rank"] and len(w) == 96
    assert w["index"].tolist() == list(range(96))
    assert w["label"].tolist() == np.load(sets["source"])["y"].tolist()
    assert sorted(w["rank"]) == list(range(1, 97)) and w["alpha"].between(0, 1.1).all()
    assert (w.sort_values("rank")["alpha"].diff().dropna() >= 0).all()  # rank 1 = lowest alpha
    assert not np.allclose(w["alpha"], 1.0)  # alpha moved
    assert (out / "weights.csv.provenance.json").exists()

    m = json.loads((out / "metrics.json").read_text())
    assert m["mode"] == "noisy" and m["n_source"] == 96 and m["n_test"] == 60 and len(m["history"]) == 3
    assert 0 <= m["test_accuracy"] <= 1 and m["provenance"]["config"]["source"] == sets["source"]
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    assert m["history"][-1]["test_accuracy"] == m["test_accuracy"] and "alpha_mean" in m["history"][0]

    features, head, state = load_fitted(out / "model.pt")  # the saved model gives the reported accuracy
    z = np.load(sets["test"])
    x = to_float(torch.from_numpy(z["x"])[:, None], mean=state["mean"], std=state["std"])
    with torch.no_grad():
        acc = (head(features(x)).argmax(1).numpy() == z["y"]).mean()
    assert acc == pytest.approx(m["test_accuracy"])


def test_flipped_labels_get_the_lowest_weights_reproducibly(sets, tmp_path):
    learn = ("--model", "mlp", "--lr", "0.1", "--lr-alpha", "300", "--epochs", "12")
    assert _fit(sets, tmp_path / "a", *learn) == 0
    assert _fit(sets, tmp_path / "b", *learn) == 0
    a, b = (pd.read_csv(tmp_path / d / "weights.csv") for d in "ab")
    pd.testing.assert_frame_equal(a, b)  # same seed, same weights
    flipped = sets["flipped"]
    assert a["alpha"][flipped].mean() < 0.2 < 1.0 < a["alpha"][~flipped].mean()
    assert flipped[a.sort_values("rank")["index"][: flipped.sum()]].mean() > 0.9  # most suspect = flipped


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
    assert list(w.columns) == ["index", "label", "alpha", "rank", "path"] and w["path"][0].endswith("class0/00.png")


def test_true_labels_score_alpha_as_a_detector(sets, tmp_path):
    x, y_true = _images(96, 3, seed=0)  # the source before its labels were rotated
    true = _write(tmp_path / "true.npz", x, y_true)
    learn = ("--model", "mlp", "--lr", "0.1", "--lr-alpha", "300", "--epochs", "12")
    assert _fit(sets, tmp_path / "fit", *learn, "--true-labels", true, "--flag-threshold", "0.2") == 0
    d = json.loads((tmp_path / "fit/metrics.json").read_text())["detection"]
    assert d["n_noisy"] == sets["flipped"].sum() == 24 and d["threshold"] == 0.2
    assert d["auroc"] > 0.9 and d["average_precision"] > 0.5 and 0 <= d["f1"] <= 1
    w = pd.read_csv(tmp_path / "fit/weights.csv")
    assert list(w.columns) == ["index", "label", "alpha", "rank", "true_label", "suspect"]
    assert (w["true_label"] == y_true).all() and (w["suspect"] == (w["alpha"] < 0.2)).all()
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
