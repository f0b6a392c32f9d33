"""The Table 1 protocol (:mod:`soseleto.experiments.noisy`): the split, the sets, one run of each
method with its outputs, fine-tuning from the baseline and resuming a killed run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.config import DataConfig, NoisySplitConfig, PeerConfig, to_dict
from soseleto.core.checkpoint import identity, resume_path
from soseleto.core.loop import EpochStats
from soseleto.data.noise import confusion_matrix
from soseleto.experiments import noisy
from soseleto.report.table1 import read_confusion

from builders import paired_config, plain_config, soseleto_config

DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=160, generated_test=60)
SPLIT = NoisySplitConfig(dataset="cifar10", n_target=50)
MODEL = "cifar_quick"
TRAINER = soseleto_config(lr_p=0.02, lr_alpha=100.0, momentum=0.9, source_batch=50, target_batch=10, epochs=2)
BASELINE = plain_config(lr_p=0.02, momentum=0.9, batch=50, epochs=2)
FINETUNE = plain_config(lr_p=0.02, momentum=0.9, batch=10, epochs=1)
PEER_TRAINER = paired_config(lr_p=0.02, momentum=0.9, source_batch=50, target_batch=10, epochs=2)


def test_split_is_class_balanced_disjoint_and_as_noisy_as_asked():
    y = torch.arange(10).repeat(2000)[torch.randperm(20000, generator=torch.Generator().manual_seed(0))]
    split = noisy.make_split(y, confusion_matrix(10, 0.4, seed=0), n_target=500, seed=3)
    target, source = split[split.role == "target"], split[split.role == "source"]
    assert set(split.role) == {"target", "source"}  # no validation, no test by default
    assert len(target) == 500 and len(source) == 19500
    assert target.true_label.value_counts().tolist() == [50] * 10
    assert set(target["index"]).isdisjoint(source["index"]) and sorted(split["index"]) == list(range(20000))
    assert (target.label == target.true_label).all() and not target.noisy.any()
    assert source.noisy.mean() == pytest.approx(0.4, abs=0.015)
    assert ((source.label != source.true_label) == source.noisy).all()
    again = noisy.make_split(y, confusion_matrix(10, 0.4, seed=0), n_target=500, seed=3)
    pd.testing.assert_frame_equal(split, again)
    with pytest.raises(ValueError, match="n_target=55"):
        noisy.make_split(y, confusion_matrix(10, 0.4, seed=0), n_target=55, seed=3)


def test_split_holds_out_validation_and_test_per_class():
    y = torch.arange(4).repeat(30)
    split = noisy.make_split(y, confusion_matrix(4, 0.3, seed=0), n_target=20, seed=1, validation_per_class=2,
                             test_per_class=6)
    counts = split.groupby(["role", "true_label"]).size().unstack()
    assert counts.loc["test"].tolist() == [6] * 4 and counts.loc["validation"].tolist() == [2] * 4
    assert counts.loc["target"].tolist() == [3] * 4 and counts.loc["source"].tolist() == [19] * 4
    clean = split[split.role != "source"]
    assert (clean.label == clean.true_label).all() and not clean.noisy.any()
    # the target is drawn as without a test split, from what the test leaves
    no_val = noisy.make_split(y, confusion_matrix(4, 0.3, seed=0), n_target=20, seed=1, test_per_class=6)
    assert set(no_val[no_val.role == "target"]["index"]) == set(split[split.role.isin(["target", "validation"])]["index"])
    with pytest.raises(ValueError, match="validation_per_class=5 leaves no clean target image"):
        noisy.make_split(y, confusion_matrix(4, 0.3, seed=0), n_target=20, seed=1, validation_per_class=5)


def _split(tmp_path, split_cfg=SPLIT, noise=0.4):
    out = {"split": str(tmp_path / "split.csv"), "confusion": str(tmp_path / "c.csv"), "info": str(tmp_path / "s.json")}
    info = noisy.write_split(split_cfg, DATA, noise=noise, outputs=out)
    return out, info


def _outputs(run, *extra):
    run.mkdir(parents=True, exist_ok=True)
    names = {"metrics": "metrics.json", "checkpoint": "checkpoint.pt", "alpha": "alpha.csv", "scores": "scores.csv"}
    return {k: str(run / names[k]) for k in ("metrics", "checkpoint", *extra)}


def _run(method, settings, out, split, **kw):
    return noisy.run_method(method, settings, split_cfg=kw.pop("split_cfg", SPLIT), model=MODEL, data=DATA, noise=0.4,
                            seed=0, device="cpu", split_csv=split["split"], outputs=out, **kw)


def test_a_peer_method_runs_through_run_method(tmp_path):
    split, _ = _split(tmp_path)
    run = tmp_path / "l2rw"
    metrics = _run("l2rw", PEER_TRAINER, _outputs(run, "scores"), split, options=PeerConfig())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert (run / "checkpoint.pt").exists() and not (run / "checkpoint.pt.resume").exists()  # moved onto it
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["provenance"]["config"]["settings"]["target_batch"] == 10
    assert saved["provenance"]["config"]["options"] == to_dict(PeerConfig())
    scores = pd.read_csv(run / "scores.csv")
    assert list(scores.columns) == ["index", "label", "true_label", "noisy", "score", "draws"] and len(scores) == 110
    assert (scores.draws == 2).all() and scores.score.mean() == pytest.approx(1.0, abs=0.2)
    assert metrics["score_mean_clean"] == pytest.approx(scores.score[~scores.noisy].mean())
    assert metrics["score_mean_noisy"] == pytest.approx(scores.score[scores.noisy].mean())
    glc = _run("glc", PEER_TRAINER, _outputs(tmp_path / "glc"), split, options=PeerConfig())
    np.testing.assert_allclose(np.sum(glc["corruption"], axis=1), 1.0, atol=1e-5)  # GLC's C, row-stochastic
    with pytest.raises(ValueError, match=r"joint writes metrics, checkpoint; got outputs"):
        _run("joint", PEER_TRAINER, _outputs(tmp_path / "j", "scores"), split, options=PeerConfig())
    with pytest.raises(ValueError, match=r"l2rw writes metrics, checkpoint, scores"):
        _run("l2rw", PEER_TRAINER, _outputs(tmp_path / "k"), split, options=PeerConfig())
    with pytest.raises(ValueError, match="method 'mwn' is not a noisy method"):
        _run("mwn", PEER_TRAINER, _outputs(tmp_path / "m"), split)


def test_three_methods_end_to_end_on_generated_data(tmp_path):
    split, info = _split(tmp_path)
    assert info["n_target"] == 50 and info["n_source"] == 110 and info["target_per_class"] == [5] * 10
    assert info["n_validation"] == 0 and info["n_test"] == 0 and info["n_classes"] == 10
    np.testing.assert_allclose(np.diag(read_confusion(split["confusion"])), 0.6)
    baseline_ckpt = str(tmp_path / "noisy_baseline" / "checkpoint.pt")
    out = {}
    for method, settings in (("noisy_baseline", BASELINE), ("soseleto", TRAINER), ("finetune", FINETUNE)):
        run = tmp_path / method
        out[method] = _run(method, settings, _outputs(run, *(["alpha"] if method == "soseleto" else [])), split,
                           init=(baseline_ckpt, BASELINE) if method == "finetune" else None)
        assert (run / "checkpoint.pt").exists()
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n_test"] == 60
        assert metrics["realised_noise"] == pytest.approx(info["realised_noise"])
        assert metrics["provenance"]["method"] == method and metrics["seconds_per_epoch"] > 0
        assert metrics["accuracy"] == metrics["history"][-1]["test_accuracy"]  # the test accuracy per epoch
        assert "best_epoch" not in metrics  # no validation split
    alpha = pd.read_csv(tmp_path / "soseleto" / "alpha.csv")
    assert list(alpha.columns) == ["index", "label", "true_label", "noisy", "alpha"] and len(alpha) == 110
    assert alpha.alpha.between(0, 1.1 + 1e-6).all() and alpha.alpha.std() > 0
    assert out["soseleto"]["alpha_mean_clean"] == pytest.approx(alpha.alpha[~alpha.noisy].mean())
    assert out["finetune"]["init_accuracy"] == pytest.approx(out["noisy_baseline"]["accuracy"])
    assert len(out["finetune"]["history"]) == 1 and out["finetune"]["n_target"] == 50
    assert "loss_target" not in out["noisy_baseline"]["history"][0]  # plain runs have no target loss
    assert "loss_target" in out["soseleto"]["history"][0] and "alpha_mean" in out["soseleto"]["history"][0]
    # a fine-tune from a checkpoint written for other baseline settings is refused
    other = plain_config(lr_p=0.02, momentum=0.9, batch=50, epochs=3)
    with pytest.raises(ValueError, match=r"different config \(settings\.epochs: 2 vs 3\)"):
        _run("finetune", FINETUNE, _outputs(tmp_path / "x"), split, init=(baseline_ckpt, other))
    with pytest.raises(ValueError, match="finetune needs init"):
        _run("finetune", FINETUNE, _outputs(tmp_path / "y"), split)


def test_caffe_weight_init_reaches_the_run_and_its_identity(tmp_path):
    split, _ = _split(tmp_path)
    still = plain_config(lr_p=1e-9, momentum=0.0, batch=50, epochs=1)  # the weights barely move from their init
    metrics = _run("noisy_baseline", still, _outputs(tmp_path / "c"), split, weight_init="caffe")
    state = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)
    assert state["features"]["0.0.weight"].std().item() == pytest.approx(1e-4, rel=0.1)  # Caffe's conv1 std
    assert state["head"]["weight"].std().item() == pytest.approx(0.1, rel=0.1)  # ip2
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert state["config"]["weight_init"] == "caffe" and saved["provenance"]["config"]["weight_init"] == "caffe"
    default = _run("noisy_baseline", still, _outputs(tmp_path / "p"), split)
    assert torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=False)["config"]["weight_init"] == "pytorch"
    assert default["history"][0]["loss_source"] != metrics["history"][0]["loss_source"]
    # a fine-tune refuses a baseline trained from other initial weights
    with pytest.raises(ValueError, match="weight_init"):
        _run("finetune", FINETUNE, _outputs(tmp_path / "f"), split, init=(str(tmp_path / "c" / "checkpoint.pt"), still))


def test_caffe_input_scale_keeps_pixels_on_the_0_255_scale_and_reaches_the_identity(tmp_path):
    split, _ = _split(tmp_path)
    frame = pd.read_csv(split["split"])
    std_sets, caffe_sets = noisy.load_sets(SPLIT, DATA, frame), noisy.load_sets(SPLIT, DATA, frame, "caffe")
    x, c = std_sets.source.x, caffe_sets.source.x
    # both centred by the same per-channel mean; caffe is not divided by the std: (x / 255 - mean) * 255
    ratio = (c * x).sum(dim=(0, 2, 3)) / (x * x).sum(dim=(0, 2, 3))  # per channel: std * 255
    torch.testing.assert_close(c, x * ratio.view(1, -1, 1, 1), rtol=1e-4, atol=1e-3)
    assert (ratio > 1).all() and torch.equal(caffe_sets.test.y, std_sets.test.y)
    still = plain_config(lr_p=1e-9, momentum=0.0, batch=50, epochs=1)
    _run("noisy_baseline", still, _outputs(tmp_path / "c"), split, input_scale="caffe")
    assert torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)["config"]["input_scale"] == "caffe"
    with pytest.raises(ValueError, match="input_scale='raw' is unknown"):
        noisy.load_sets(SPLIT, DATA, frame, "raw")


def test_frozen_alpha_keeps_the_initial_weights(tmp_path):
    split, _ = _split(tmp_path)
    cfg = soseleto_config(lr_p=0.02, lr_alpha=100.0, momentum=0.9, source_batch=50, target_batch=10, epochs=1,
                          alpha_init=0.8)
    metrics = _run("soseleto_frozen", cfg, _outputs(tmp_path / "f", "alpha"), split)
    alpha = pd.read_csv(tmp_path / "f" / "alpha.csv")
    assert (alpha.alpha == np.float32(0.8)).all() and len(alpha) == 110
    assert metrics["history"][0]["alpha_mean"] == pytest.approx(0.8)


def test_retrain_takes_soseletos_alpha_frozen_and_fresh_weights(tmp_path):
    split, _ = _split(tmp_path)
    first = _run("soseleto", TRAINER, _outputs(tmp_path / "s", "alpha"), split)
    alpha = pd.read_csv(tmp_path / "s" / "alpha.csv").alpha.to_numpy()
    ckpt = str(tmp_path / "s" / "checkpoint.pt")
    again = _run("soseleto_retrain", TRAINER, _outputs(tmp_path / "r"), split, init=(ckpt, TRAINER))
    # every epoch of the retrained run sees the first run's final alpha, unchanged (lr_alpha = 0)
    assert [h["alpha_mean"] for h in again["history"]] == pytest.approx([alpha.mean()] * 2, rel=1e-6)
    assert first["history"][0]["alpha_mean"] != pytest.approx(alpha.mean())  # the first run's moved
    assert "init_accuracy" not in again  # fresh weights, not the first run's
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    np.testing.assert_allclose(state["alpha"].numpy(), alpha, rtol=1e-6)
    with pytest.raises(ValueError, match="soseleto_retrain needs init"):
        _run("soseleto_retrain", TRAINER, _outputs(tmp_path / "q"), split)


def test_validation_split_picks_the_epoch_of_best_validation_accuracy(tmp_path):
    split_cfg = NoisySplitConfig(dataset="cifar10", n_target=50, validation_per_class=1)
    split, info = _split(tmp_path, split_cfg)
    assert info["n_target"] == 40 and info["n_validation"] == 10
    metrics = _run("noisy_baseline", BASELINE, _outputs(tmp_path / "b"), split, split_cfg=split_cfg)
    assert metrics["n_validation"] == 10 and all("validation_accuracy" in h for h in metrics["history"])
    best = max(metrics["history"], key=lambda h: (h["validation_accuracy"], -h["epoch"]))
    assert metrics["best_epoch"] == best["epoch"] and metrics["accuracy_at_best_validation"] == best["test_accuracy"]
    assert metrics["best_validation_accuracy"] == best["validation_accuracy"]


def test_a_file_without_a_test_split_holds_one_out(tmp_path):
    from soseleto.data.sets import generated

    x, y = generated("mnist", "train", 120, seed=0)
    np.savez(tmp_path / "digits.npz", x=x[:, 0].numpy(), y=y.numpy())
    split_cfg = NoisySplitConfig(dataset=str(tmp_path / "digits.npz"), n_target=20, test_per_class=2)
    split, info = _split(tmp_path, split_cfg)
    assert info["n_test"] == 20 and info["n_target"] == 20 and info["n_source"] == 80
    sets_ = noisy.load_sets(split_cfg, DATA, pd.read_csv(split["split"]))
    assert sets_.shape == (1, 28, 28) and len(sets_.test) == 20 and sets_.validation is None
    roles = pd.read_csv(split["split"]).set_index("index").role
    test_idx = roles.index[roles == "test"].to_numpy()
    assert torch.equal(sets_.test.y, y[torch.tensor(test_idx)])


def test_a_split_for_other_data_is_refused(tmp_path):
    split, _ = _split(tmp_path)
    other = DataConfig(source="generated", dir="unused", generated_train=150, generated_test=60)
    with pytest.raises(ValueError, match="the split does not match the data set 'cifar10'"):
        noisy.load_sets(SPLIT, other, pd.read_csv(split["split"]))


def test_killed_run_resumes_from_its_resume_file(tmp_path):
    split, _ = _split(tmp_path)
    one = plain_config(lr_p=0.02, momentum=0.9, batch=50, epochs=1)
    first = _run("noisy_baseline", one, _outputs(tmp_path / "a"), split)
    full = _run("noisy_baseline", BASELINE, _outputs(tmp_path / "b"), split)
    # a run "killed" after epoch 1 leaves its resume file; rerunning finishes epoch 2 only
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    state["config"] = identity("noisy_baseline", BASELINE, seed=0, options=None, noise=0.4, split=SPLIT, model=MODEL,
                               weight_init="pytorch", input_scale="standard", data=DATA)
    (tmp_path / "c").mkdir()
    torch.save(state, resume_path(tmp_path / "c" / "checkpoint.pt"))
    resumed = _run("noisy_baseline", BASELINE, _outputs(tmp_path / "c"), split)
    assert resumed["accuracy"] == full["accuracy"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]  # epoch 1 read back (its seconds too), not re-run
    assert [h["loss_source"] for h in resumed["history"]] == [h["loss_source"] for h in full["history"]]


def test_run_summary_by_hand():
    history = [EpochStats(1, 1.0, None, {"test_accuracy": 0.5, "validation_accuracy": 0.6}, 2.0),
               EpochStats(2, 0.8, None, {"test_accuracy": 0.7, "validation_accuracy": 0.9}, 4.0),
               EpochStats(3, 0.7, None, {"test_accuracy": 0.6, "validation_accuracy": 0.9}, 3.0)]
    s = noisy.run_summary(history, 3)
    assert (s["accuracy"], s["epochs"], s["seconds_per_epoch"]) == (0.6, 3, 3.0)
    assert (s["best_epoch"], s["accuracy_at_best_validation"], s["best_validation_accuracy"]) == (2, 0.7, 0.9)
    assert s["history"] == [h.record() for h in history]
    plain = noisy.run_summary([EpochStats(1, 1.0, None, {"test_accuracy": 0.5}, 1.0)], 1)
    assert "best_epoch" not in plain and plain["accuracy"] == 0.5


def test_source_alpha_table_checks_its_length():
    split = pd.DataFrame({"index": [0, 1, 2], "role": ["source", "target", "source"], "true_label": [0, 1, 1],
                          "label": [1, 1, 1], "noisy": [True, False, False]})
    table = noisy.source_alpha_table(split, np.array([0.2, 0.9]))
    assert table["index"].tolist() == [0, 2] and table.alpha.tolist() == [0.2, 0.9] and table.noisy.tolist() == [True, False]
    with pytest.raises(ValueError, match="3 values of 'score' for 2 source samples"):
        noisy.source_alpha_table(split, np.zeros(3), column="score")
