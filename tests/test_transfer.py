"""The Table 2 protocol (:mod:`soseleto.experiments.transfer`): index files, the prepared sets and
one job of each method."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.config import AppendixCConfig, DataConfig, SideConfig, TransferConfig
from soseleto.data import sets
from soseleto.experiments import transfer

from builders import plain_config, soseleto_config

DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=400, generated_test=150)
SOURCE, TARGET = SideConfig("svhn", (0, 1, 2, 3, 4)), SideConfig("mnist", (5, 6, 7, 8, 9))
TASK = transfer.Task(SOURCE, TARGET, 28, "lenet")
SOSELETO = soseleto_config(lr_p=0.01, momentum=0.9, source_batch=32, target_batch=10, epochs=1, shared_classifier=False)
TWO_STAGE = soseleto_config(lr_p=0.01, momentum=0.9, source_batch=32, target_batch=10, epochs=1)
TARGET_ONLY = plain_config(lr_p=0.01, batch=10, epochs=3)
PRETRAIN = plain_config(lr_p=0.01, batch=32, epochs=1)
FINETUNE = plain_config(lr_p=0.01, batch=10, epochs=3)


def _target_split(tmp_path, n_target, seed, side=TARGET, data=DATA, tag=""):
    out = {"target": str(tmp_path / f"t{n_target}_{seed}{tag}.csv"), "test": str(tmp_path / f"e{n_target}_{seed}{tag}.csv")}
    return transfer.write_target_split(side, data, n_target=n_target, seed=seed, outputs=out), out


def test_target_split_is_class_balanced_with_remapped_labels(tmp_path):
    _, y = sets.load_labelled("mnist", "train", DATA)
    (df, _), out = _target_split(tmp_path, 20, 3)
    assert len(df) == 20 and df.label.value_counts().to_dict() == {5: 4, 6: 4, 7: 4, 8: 4, 9: 4}
    assert (df.target_label == df.label - 5).all()
    assert (y[torch.tensor(df["index"].to_numpy())].numpy() == df.label.to_numpy()).all()
    pd.testing.assert_frame_equal(pd.read_csv(out["target"]), df)
    # n_t = 20 is nested in n_t = 25 for the same seed; another seed draws another set
    assert set(df["index"]) < set(_target_split(tmp_path, 25, 3)[0][0]["index"])
    assert set(df["index"]) != set(_target_split(tmp_path, 20, 4)[0][0]["index"])
    with pytest.raises(ValueError, match="n_target=22"):
        _target_split(tmp_path, 22, 0)


def test_test_and_source_splits_keep_only_their_classes(tmp_path):
    _, y_test = sets.load_labelled("mnist", "test", DATA)
    (_, test), _ = _target_split(tmp_path, 20, 0)
    keep = np.flatnonzero(np.isin(y_test.numpy(), [5, 6, 7, 8, 9]))
    assert test["index"].tolist() == keep.tolist()  # every test image of the target classes, in order
    assert (test.target_label == test.label - 5).all() and (test.label == y_test.numpy()[keep]).all()
    _, y_s = sets.load_labelled("svhn", "train", DATA)
    src = transfer.write_source_split(SOURCE, DATA, str(tmp_path / "s.csv"))
    assert src["index"].tolist() == np.flatnonzero(y_s.numpy() < 5).tolist()
    assert (src.label == y_s.numpy()[src["index"]]).all() and list(src.columns) == ["index", "label"]
    assert (tmp_path / "s.csv.provenance.json").exists()


def test_a_file_target_takes_its_test_images_from_the_rest(tmp_path):
    x, y = sets.generated("mnist", "train", 200, seed=1)
    np.savez(tmp_path / "digits.npz", x=x[:, 0].numpy(), y=y.numpy())
    side = SideConfig(str(tmp_path / "digits.npz"), (5, 6, 7, 8, 9))
    (target, test), _ = _target_split(tmp_path, 10, 0, side=side)
    assert not set(target["index"]) & set(test["index"])
    assert set(target["index"]) | set(test["index"]) == set(np.flatnonzero(y.numpy() >= 5))


def _splits(tmp_path, n_target=20, source_classes=(0, 1, 2, 3, 4)):
    paths = {"source": str(tmp_path / "s.csv")}
    transfer.write_source_split(SideConfig("svhn", source_classes), DATA, paths["source"])
    _, out = _target_split(tmp_path, n_target, 0)
    return {**paths, **out}


def test_prepare_gives_gray_28x28_sets_with_remapped_labels(tmp_path):
    p = _splits(tmp_path)
    prepared = transfer.prepare(TASK, DATA, p)
    assert prepared.source.x.shape[1:] == (1, 28, 28) and prepared.source.x.dtype == torch.float32  # SVHN was (3, 32, 32)
    assert set(prepared.source.y.tolist()) == set(range(5)) and set(prepared.source_label.tolist()) <= set(range(5))
    assert prepared.target.x.shape == (20, 1, 28, 28) and sorted(set(prepared.target.y.tolist())) == list(range(5))
    assert set(prepared.test.y.tolist()) <= set(range(5)) and len(prepared.test) == len(pd.read_csv(p["test"]))
    # MNIST sets are standardised with the statistics of the labelled target images
    assert abs(float(prepared.target.x.mean())) < 1e-4 and abs(float(prepared.source.x.mean())) < 1e-4
    assert prepared.channels == 1 and prepared.target_index.tolist() == pd.read_csv(p["target"])["index"].tolist()
    pool, idx = transfer.unlabelled_pool(TASK, DATA, prepared)
    assert not set(idx) & set(prepared.target_index) and set(pool.y.tolist()) <= set(range(5))
    _, y = sets.load_labelled("mnist", "train", DATA)
    assert len(idx) == int((y >= 5).sum()) - 20
    only_target = transfer.prepare(TASK, DATA, {"target": p["target"], "test": p["test"]})
    assert only_target.source is None and torch.equal(only_target.target.x, prepared.target.x)


def test_colour_target_makes_every_image_colour(tmp_path):
    task = transfer.Task(SideConfig("mnist", (0, 1, 2, 3, 4)), SideConfig("svhn", (5, 6, 7, 8, 9)), 16, "auto")
    src = str(tmp_path / "s.csv")
    transfer.write_source_split(task.source, DATA, src)
    _, out = _target_split(tmp_path, 10, 0, side=task.target)
    prepared = transfer.prepare(task, DATA, {"source": src, **out})
    assert prepared.source.x.shape[1:] == (3, 16, 16) and prepared.target.x.shape[1:] == (3, 16, 16)


def test_index_file_for_other_data_is_an_error(tmp_path):
    p = _splits(tmp_path)
    other = DataConfig(source="generated", dir="unused", generated_train=300, generated_test=150)  # other data
    with pytest.raises(ValueError, match="does not match the loaded data set"):
        transfer.prepare(TASK, other, {"target": p["target"], "test": p["test"]})


def _job(method, settings, tmp_path, inputs, names=("metrics", "checkpoint", "alpha"), n_target=20, seed=0, **kw):
    run = tmp_path / f"{method}{kw.pop('tag', '')}"
    outputs = {k: str(run / f) for k, f in [("metrics", "m.json"), ("checkpoint", "c.pt"), ("alpha", "a.csv")] if k in names}
    return transfer.TransferRun(method, settings, TASK, DATA, seed, "cpu", inputs, outputs, n_target=n_target, **kw)


def test_tiny_soseleto_transfer_and_two_stage_runs(tmp_path):
    p = _splits(tmp_path)
    job = _job("soseleto", SOSELETO, tmp_path, p)
    m1 = transfer.run_and_save(job)
    assert 0 <= m1["accuracy"] <= 1 and m1["n_source"] == len(pd.read_csv(p["source"])) and len(m1["history"]) == 1
    assert m1["accuracy"] == m1["history"][-1]["test_accuracy"] and m1["n_test"] == len(pd.read_csv(p["test"]))
    alpha = pd.read_csv(job.outputs["alpha"])
    assert list(alpha.columns) == ["index", "label", "alpha"]
    assert alpha["index"].tolist() == pd.read_csv(p["source"])["index"].tolist()
    assert alpha.alpha.between(0, 1.1).all() and alpha.alpha.std() > 0  # alpha moved
    saved = json.loads((tmp_path / "soseleto" / "m.json").read_text())
    assert saved["provenance"]["config"]["data"]["source"] == "generated" and saved["method"] == "soseleto"
    assert (tmp_path / "soseleto" / "c.pt").exists() and not (tmp_path / "soseleto" / "c.pt.resume").exists()

    inputs = {"target": p["target"], "test": p["test"], "init": job.outputs["checkpoint"]}
    two = _job("two_stage", TWO_STAGE, tmp_path, inputs, init=SOSELETO, options="stage1")
    m2 = transfer.run_and_save(two)
    a2 = pd.read_csv(two.outputs["alpha"])
    assert list(a2.columns) == ["index", "pseudo_label", "true_label", "alpha"]
    assert len(a2) == m2["n_pool"] and 0 <= m2["pseudo_label_accuracy"] <= 1 and 0 <= m2["accuracy"] <= 1
    assert m2["pseudo_label_accuracy"] == pytest.approx((a2.pseudo_label == a2.true_label).mean())
    assert not set(a2["index"]) & set(pd.read_csv(p["target"])["index"])
    scratch = transfer.run_and_save(_job("two_stage", TWO_STAGE, tmp_path, inputs, init=SOSELETO, tag="scratch",
                                         options="scratch"))
    assert scratch["pseudo_label_accuracy"] == m2["pseudo_label_accuracy"]  # the same pseudo-labels


def test_frozen_alpha_transfer_keeps_the_initial_weights(tmp_path):
    p = _splits(tmp_path)
    job = _job("soseleto_frozen", SOSELETO, tmp_path, p)
    m = transfer.run_and_save(job)
    assert (pd.read_csv(job.outputs["alpha"]).alpha == 1.0).all() and m["history"][0]["alpha_mean"] == 1.0


def test_stage1_checkpoint_of_another_config_is_refused(tmp_path):
    p = _splits(tmp_path)
    job = _job("soseleto", SOSELETO, tmp_path, p)
    transfer.run_and_save(job)
    other = soseleto_config(lr_p=0.02, momentum=0.9, source_batch=32, target_batch=10, epochs=1,
                            shared_classifier=False)
    inputs = {"target": p["target"], "test": p["test"], "init": job.outputs["checkpoint"]}
    with pytest.raises(ValueError, match=r"different config \(settings\.lr_p: 0\.01 vs 0\.02\)"):
        transfer.run_and_save(_job("two_stage", TWO_STAGE, tmp_path, inputs, init=other, options="stage1"))


def test_fine_tuning_starts_from_the_pretrained_features(tmp_path):
    p = _splits(tmp_path)
    pre = _job("pretrain", PRETRAIN, tmp_path, {"source": p["source"]}, names=("metrics", "checkpoint"), n_target=None,
               seed=1)
    m = transfer.run_and_save(pre)
    assert m["n_target"] is None and m["accuracy_on"] == "source train" and 0 <= m["accuracy"] <= 1
    assert "test_accuracy" not in m["history"][0] and m["n_test"] is None
    ft = _job("fine_tuning", FINETUNE, tmp_path, {"target": p["target"], "test": p["test"],
                                                  "init": pre.outputs["checkpoint"]},
              names=("metrics", "checkpoint"), seed=1, init=PRETRAIN)
    m = transfer.run_and_save(ft)
    assert 0 <= m["accuracy"] <= 1 and len(m["history"]) == 3
    state = torch.load(pre.outputs["checkpoint"], weights_only=False)
    ft_state = torch.load(ft.outputs["checkpoint"], weights_only=False)
    assert state["config"]["method"] == "pretrain" and ft_state["config"]["method"] == "fine_tuning"
    with pytest.raises(ValueError, match="different config"):  # pre-trained with other settings
        transfer.run_and_save(_job("fine_tuning", FINETUNE, tmp_path, ft.inputs, names=("metrics", "checkpoint"),
                                   seed=1, init=plain_config(lr_p=0.02, batch=32, epochs=1), tag="x"))
    with pytest.raises(ValueError, match="method 'bogus' is not a transfer method"):
        transfer.run_and_save(_job("bogus", FINETUNE, tmp_path, {}, names=("metrics", "checkpoint"), seed=1))


def test_target_only_learns_on_the_target_images(tmp_path):
    p = _splits(tmp_path)
    job = _job("target_only", TARGET_ONLY, tmp_path, {"target": p["target"], "test": p["test"]},
               names=("metrics", "checkpoint"))
    m = transfer.run_and_save(job)
    assert len(m["history"]) == 3 and m["n_source"] is None and m["history"][0]["loss_source"] > 0
    assert m["seconds_per_epoch"] > 0 and m["accuracy_on"] == "test images of the target classes"


def test_caffe_weight_init_reaches_a_transfer_run(tmp_path):
    p = _splits(tmp_path)
    caffe = transfer.Task(SOURCE, TARGET, 28, "lenet", "caffe")
    still = plain_config(lr_p=1e-9, batch=10, epochs=1)  # the weights barely move from their init
    inputs = {"target": p["target"], "test": p["test"]}
    outputs = {"metrics": str(tmp_path / "m.json"), "checkpoint": str(tmp_path / "c.pt")}
    transfer.run_and_save(transfer.TransferRun("target_only", still, caffe, DATA, 0, "cpu", inputs, outputs, n_target=20))
    state = torch.load(outputs["checkpoint"], weights_only=False)
    conv1 = state["features"]["0.0.weight"]
    assert conv1.abs().max() <= (3 / 25) ** 0.5 and conv1.std().item() == pytest.approx(0.2, rel=0.1)  # Caffe's xavier
    assert state["head"]["bias"].abs().max() < 1e-6 and state["config"]["task"]["weight_init"] == "caffe"
    assert TASK.weight_init == "pytorch"  # the default


def test_job_identity_names_the_run_it_starts_from():
    job = transfer.TransferRun("two_stage", TWO_STAGE, TASK, DATA, 3, "cpu", {}, {}, n_target=25, init=SOSELETO)
    own, stage1 = job.identity(), job.identity("soseleto", job.init)
    assert (own["method"], own["seed"], own["n_target"]) == ("two_stage", 3, 25)
    assert stage1["method"] == "soseleto" and stage1["settings"]["shared_classifier"] is False
    assert stage1["task"]["source"]["dataset"] == "svhn" and own["data"]["generated_train"] == 400
    assert job.identity("pretrain", PRETRAIN, n_target=None)["n_target"] is None


def test_a_file_target_holds_out_the_same_test_images_for_every_run(tmp_path):
    x, y = sets.generated("mnist", "train", 300, seed=0)
    path = tmp_path / "digits.npz"
    np.savez(path, x=x[:, 0].numpy(), y=y.numpy())
    side = SideConfig(str(path), (5, 6, 7, 8, 9))
    splits = {}
    for nt, seed in ((10, 0), (15, 0), (10, 1)):
        out = {"target": str(tmp_path / f"t{nt}_{seed}.csv"), "test": str(tmp_path / f"e{nt}_{seed}.csv")}
        splits[nt, seed] = transfer.write_target_split(side, DATA, n_target=nt, seed=seed, outputs=out,
                                                        test_per_class=4)
    tests = {key: set(test["index"]) for key, (_, test) in splits.items()}
    assert len(set(map(frozenset, tests.values()))) == 1 and len(tests[10, 0]) == 20  # 4 per class, every run
    target10, target15 = set(splits[10, 0][0]["index"]), set(splits[15, 0][0]["index"])
    assert target10 < target15 and not target15 & tests[15, 0]  # nested draws, never a test image
    # a source from the same file never holds the target's test images, even of a shared class
    source = transfer.write_source_split(SideConfig(str(path), tuple(range(10))), DATA, str(tmp_path / "s.csv"),
                                         target=side, test_per_class=4)
    assert not set(source["index"]) & tests[10, 0] and len(source) == 300 - 20
    # two-stage's unlabelled pool: the target classes' images besides the labelled target and the test
    task = transfer.Task(SideConfig(str(path), (0, 1, 2, 3, 4)), side, 28, "auto")
    paths = {"target": str(tmp_path / "t10_0.csv"), "test": str(tmp_path / "e10_0.csv")}
    prepared = transfer.prepare(task, DATA, paths)
    pool, rows = transfer.unlabelled_pool(task, DATA, prepared)
    in_classes = int(np.isin(y.numpy(), [5, 6, 7, 8, 9]).sum())
    assert len(pool) == in_classes - 10 - 20 and not set(rows) & (tests[10, 0] | target10)


def test_two_stage_on_a_file_needs_its_test_images_held_out():
    with pytest.raises(ValueError, match="test_per_class=None is invalid: expected a number of test images"):
        TransferConfig(target=SideConfig("digits.npz", (5, 6, 7, 8, 9)), methods=("two_stage",))
    with pytest.raises(ValueError, match="test_per_class=5 is invalid: expected null: mnist has a test split"):
        TransferConfig(test_per_class=5)
    assert TransferConfig(target=SideConfig("d.npz", (5, 6)), n_target=(20,), appendix_c=AppendixCConfig(n_target=20),
                          methods=("two_stage",), test_per_class=3).test_per_class == 3
