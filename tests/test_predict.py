"""``soseleto predict`` and :func:`soseleto.load`: a fitted model on new images, prepared as in training."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import soseleto
from soseleto import cli


def _images(n, n_classes, *, seed, shape=(8, 8), rgb=False):
    """Learnable images: a bright bar whose row is the class, plus noise. uint8 (N, H, W[, 3])."""
    g = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = g.integers(0, 60, (n, *shape))
    for i, c in enumerate(y):
        x[i, 2 * c : 2 * c + 2, 1:5] += 180
    x = x.astype(np.uint8)
    if rgb:  # colour: the same picture, tinted differently per channel
        x = np.stack([x, x // 2, 255 - x], axis=-1)
    return x, y


def _write(path, x, y=None):
    np.savez(path, x=x) if y is None else np.savez(path, x=x, y=y)
    return str(path)


def _fit(tmp_path, *extra, mode="noisy", rgb=False, source="", target="", test=""):
    files = {name: _write(tmp_path / f"{name}.npz", *_images(n, k, seed=s, rgb=rgb))
             for name, n, k, s in (("source", 60, 3, 0), ("target", 24, 3 if mode == "noisy" else 5, 1),
                                   ("test", 40, 3 if mode == "noisy" else 5, 2))}
    out = tmp_path / "fit"
    argv = ["fit", "--mode", mode, "--source", files["source"] + source, "--target", files["target"] + target,
            "--test", files["test"] + test, "--out", str(out), "--epochs", "3", "--batch-size", "16",
            "--target-batch-size", "8", "--device", "cpu", *extra]
    assert cli.main(argv) == 0
    return files, out, json.loads((out / "metrics.json").read_text())


def _predict(model, images, out):
    return cli.main(["predict", "--model", str(model), "--images", str(images), "--out", str(out)])


def test_predict_gives_the_fitted_runs_test_accuracy(tmp_path, capsys):
    files, out, m = _fit(tmp_path)
    capsys.readouterr()
    assert _predict(out / "model.pt", files["test"], tmp_path / "p.csv") == 0
    printed = capsys.readouterr().out
    df = pd.read_csv(tmp_path / "p.csv")
    assert list(df.columns) == ["index", "label", "prediction", "prob_0", "prob_1", "prob_2"] and len(df) == 40
    assert df["index"].tolist() == list(range(40)) and (df["label"] == np.load(files["test"])["y"]).all()
    assert np.allclose(df[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)
    assert (df["prediction"] == df[["prob_0", "prob_1", "prob_2"]].to_numpy().argmax(1)).all()
    assert (df["prediction"] == df["label"]).sum() == round(m["test_accuracy"] * 40)  # the run's own test accuracy
    assert f"predicted 40 images; accuracy {m['test_accuracy']:.2%} against their labels" in printed
    assert (tmp_path / "p.csv.provenance.json").exists()

    model = soseleto.load(out / "model.pt")  # the Python API: the same numbers
    x = np.load(files["test"])["x"]
    assert (model.predict(x) == df["prediction"]).all() and (model.predict(files["test"]) == df["prediction"]).all()
    assert np.allclose(model.predict_proba(x), df[["prob_0", "prob_1", "prob_2"]], atol=1e-6)
    assert (model.predict(x.astype(np.float32) / 255) == df["prediction"]).all()  # float pixels in [0, 1]


def test_unlabelled_files_and_folders_are_predicted_alike(tmp_path):
    from PIL import Image

    files, out, _ = _fit(tmp_path)
    x = np.load(files["test"])["x"]
    flat, classed = tmp_path / "flat", tmp_path / "classed"
    flat.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img).save(flat / f"{i:03d}.png")
        (classed / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(classed / f"c{i % 3}" / f"{i:03d}.png")
    reference = soseleto.load(out / "model.pt").predict(x)
    assert _predict(out / "model.pt", _write(tmp_path / "x.npz", x), tmp_path / "a.csv") == 0
    assert _predict(out / "model.pt", flat, tmp_path / "b.csv") == 0
    assert _predict(out / "model.pt", classed, tmp_path / "c.csv") == 0
    a, b, c = (pd.read_csv(tmp_path / f"{n}.csv") for n in "abc")
    assert "label" not in a and "label" not in b and "label" in c
    assert (a["prediction"] == reference).all() and (b["prediction"] == reference).all()
    assert b["path"].str.endswith(".png").all() and b["path"].iloc[0].endswith("000.png")
    c = c.assign(row=c["path"].str[-7:-4].astype(int)).sort_values("row")
    assert (c["prediction"].to_numpy() == reference).all() and (c["label"].to_numpy() == np.arange(40) % 3).all()


def test_class_subsets_predict_the_labels_as_given(tmp_path, capsys):
    # transfer: target and test are classes 3 and 4 of a 5-class file; predictions say 3 or 4
    files, out, m = _fit(tmp_path, "--target-per-class", "4", mode="transfer", target=":3,4", test=":3,4")
    model = soseleto.load(out / "model.pt")
    assert model.labels.tolist() == [3, 4]
    capsys.readouterr()
    assert _predict(out / "model.pt", files["test"] + ":3,4", tmp_path / "p.csv") == 0
    df = pd.read_csv(tmp_path / "p.csv")
    assert list(df.columns) == ["index", "label", "prediction", "prob_3", "prob_4"] and set(df["label"]) == {3, 4}
    assert set(df["prediction"]) <= {3, 4} and (df["prediction"] == df["label"]).sum() == round(m["test_accuracy"] * 16)
    assert df["index"].tolist() == [i for i in range(40) if i % 5 in (3, 4)]  # rows of the file


def test_gray_and_resizes_of_training_are_applied_in_order(tmp_path):
    # RGB 8x8 made gray and 12x12 (--gray --size 12), then scaled up to 28x28 by auto for LeNet
    files, out, m = _fit(tmp_path, "--gray", "--size", "12", rgb=True)
    model = soseleto.load(out / "model.pt")
    assert (model.gray, model.size, model.image_shape, model.model_size, model.in_shape) == \
        (True, (12, 12), (1, 12, 12), (28, 28), (1, 28, 28))
    y = np.load(files["test"])["y"]
    assert (model.predict(files["test"]) == y).sum() == round(m["test_accuracy"] * 40)


def test_images_unlike_the_training_ones_are_refused(tmp_path, capsys):
    files, out, _ = _fit(tmp_path)
    other = _write(tmp_path / "big.npz", *_images(4, 3, seed=0, shape=(10, 10)))
    assert _predict(out / "model.pt", other, tmp_path / "p.csv") == 2
    err = capsys.readouterr().err
    assert "images of shape (1, 10, 10) (C, H, W) are not those this model was fitted on: gray 8x8, not resized" in err
    rgb = _write(tmp_path / "rgb.npz", *_images(4, 3, seed=0, rgb=True))
    assert _predict(out / "model.pt", rgb, tmp_path / "p.csv") == 2
    assert "images of shape (3, 8, 8)" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    torch.save({"features": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model.pt written by soseleto fit"):
        soseleto.load(tmp_path / "other.pt")
