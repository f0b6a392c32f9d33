import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto import noisy, table1
from soseleto.checkpoint import resume_path
from soseleto.noise import confusion_matrix

DATA = {"source": "generated", "dir": "unused", "download": False, "generated_train": 160, "generated_test": 60}
SMALL = {
    "seeds": [0], "noise_levels": [0.4], "n_target": 50,
    "trainer": {"lr_p": 0.02, "lr_alpha": 100.0, "momentum": 0.9, "source_batch": 50, "target_batch": 10, "epochs": 2},
    "baseline": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 50, "epochs": 2},
    "finetune": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 10, "epochs": 1},
}


def test_split_is_class_balanced_disjoint_and_as_noisy_as_asked():
    y = torch.arange(10).repeat(2000)[torch.randperm(20000, generator=torch.Generator().manual_seed(0))]
    split = noisy.make_split(y, confusion_matrix(10, 0.4, seed=0), n_target=500, seed=3)
    target, source = split[split.role == "target"], split[split.role == "source"]
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


def test_kept_noise_curve_on_a_hand_example():
    curve = table1.kept_noise_curve(np.array([0.9, 0.5, 0.1, 0.5]), np.array([False, True, True, False]))
    assert curve.threshold.tolist() == [-np.inf, 0.1, 0.5]  # ties at 0.5 cannot be split
    assert curve.fraction_kept.tolist() == [1.0, 0.75, 0.25]
    np.testing.assert_allclose(curve.effective_noise, [0.5, 1 / 3, 0.0])


def test_mean_curve_interpolates_and_averages_over_seeds():
    a = pd.DataFrame({"fraction_kept": [1.0, 0.5], "effective_noise": [0.4, 0.2]})
    b = pd.DataFrame({"fraction_kept": [1.0, 0.0 + 0.25], "effective_noise": [0.4, 0.0]})
    m = table1.mean_curve([a, b], np.array([0.25, 0.5, 0.75, 1.0]))
    # a is undefined below 0.5 (keeps at least half); b is linear from (0.25, 0) to (1, 0.4)
    np.testing.assert_allclose(m.effective_noise, [0.0, (0.2 + 0.4 / 3) / 2, (0.3 + 0.8 / 3) / 2, 0.4])
    assert m.n_seeds.tolist() == [1, 2, 2, 2]


def test_side_by_side_table_has_every_method(tmp_path):
    paths = []
    for i, (m, a) in enumerate([("soseleto", 0.7), ("l2rw", 0.6), ("noise_layer", 0.5), ("noisy_baseline", 0.4)]):
        for seed in (0, 1):
            paths.append(tmp_path / f"{i}{seed}.json")
            paths[-1].write_text(json.dumps({"noise": 0.3, "method": m, "seed": seed, "accuracy": a + 0.02 * seed}))
    table = table1.write_table1(paths, tmp_path / "p.csv", tmp_path / "p.md", side_by_side=True)
    assert table.method.unique().tolist() == ["noisy_baseline", "soseleto", "l2rw", "noise_layer"]
    head, _, row = (tmp_path / "p.md").read_text().splitlines()[:3]
    assert "Learning to Reweight (`l2rw`)" in head and "noise-adaptation layer (`noise_layer`)" in head
    assert row == "| 30% | 41.00 ± 1.41 | 71.00 ± 1.41 | 61.00 ± 1.41 | 51.00 ± 1.41 |"
    # table1.md keeps to the paper's rows
    table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    assert "Reweight" not in (tmp_path / "t.md").read_text()


def test_table_mean_and_std_over_seeds(tmp_path):
    rows = [(0.3, "soseleto", 0, 0.70), (0.3, "soseleto", 1, 0.74), (0.3, "noisy_baseline", 0, 0.60),
            (0.3, "noisy_baseline", 1, 0.66), (0.45, "soseleto", 0, 0.5), (0.45, "soseleto", 1, 0.5)]
    paths = []
    for i, (n, m, s, a) in enumerate(rows):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps({"noise": n, "method": m, "seed": s, "accuracy": a}))
    table = table1.write_table1(paths, tmp_path / "t.csv", tmp_path / "t.md")
    assert list(table.columns) == ["noise", "method", "seed", "accuracy"]
    assert table.method.tolist()[:4] == ["noisy_baseline", "noisy_baseline", "soseleto", "soseleto"]
    summary = table1.summarize(table).set_index(["noise", "method"])
    assert summary.loc[(0.3, "soseleto"), "mean"] == pytest.approx(72.0)
    assert summary.loc[(0.3, "soseleto"), "std"] == pytest.approx(np.sqrt(8))  # sample std of 70, 74
    assert summary.loc[(0.3, "noisy_baseline"), "std"] == pytest.approx(np.sqrt(18))
    md = (tmp_path / "t.md").read_text()
    row30 = next(line for line in md.splitlines() if line.startswith("| 30%"))
    assert "72.00 ± 2.83" in row30 and "72.41" in row30 and "63.00 ± 4.24" in row30 and "65.57" in row30
    assert "69.73" in row30 and "69.81" in row30
    row45 = next(line for line in md.splitlines() if line.startswith("| 45%"))
    assert "50.00 ± 0.00" in row45 and row45.count("—") >= 3  # no paper numbers for 45%


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"noisy\.n_target=55"):
        noisy.config_from_mapping({**SMALL, "n_target": 55})
    with pytest.raises(ValueError, match="shared_classifier"):
        noisy.config_from_mapping({**SMALL, "trainer": {"shared_classifier": False}})
    with pytest.raises(ValueError, match="methods"):
        noisy.config_from_mapping({**SMALL, "methods": ["soseleto", "coteaching"]})
    with pytest.raises(ValueError, match=r"noisy\.baseline\.lr_pp"):
        noisy.config_from_mapping({**SMALL, "baseline": {"lr_pp": 1}})
    with pytest.raises(ValueError, match=r"noisy\.peers\.noise_trace=-1"):
        noisy.config_from_mapping({**SMALL, "peers": {"noise_trace": -1}})
    with pytest.raises(ValueError, match=r"noisy\.peer_trainer\.epochs=0"):
        noisy.config_from_mapping({**SMALL, "peer_trainer": {"epochs": 0}})
    with pytest.raises(ValueError, match=r"noisy\.cleanlab_folds=1"):
        noisy.config_from_mapping({**SMALL, "cleanlab_folds": 1})


def test_peers_default_to_the_baseline_settings_and_read_only_their_sections():
    cfg = noisy.config_from_mapping({**SMALL, "methods": ["soseleto", "l2rw"]})
    assert cfg.peer_settings.epochs == 2 and cfg.peer_settings.source_batch == 50  # the baseline's
    assert cfg.peer_settings.target_batch == 10  # SOSELETO's target batch
    own = noisy.config_from_mapping({**SMALL, "peer_trainer": {"epochs": 3}})
    assert own.peer_settings.epochs == 3 and own.peer_settings.lr_p == 1e-4  # given: used as it is
    assert set(noisy.rule_params(SMALL, "glc")) == {"baseline", "trainer"}  # no peer_trainer, no peers: defaults
    assert set(noisy.rule_params({**SMALL, "peer_trainer": {}, "peers": {}}, "l2rw")) == {"peer_trainer", "peers"}
    assert set(noisy.rule_params(SMALL, "finetune")) == {"finetune", "baseline"}
    assert set(noisy.rule_params(SMALL, "split")) == {"n_target"}
    with pytest.raises(ValueError, match="method='mwn'"):
        noisy.rule_params(SMALL, "mwn")


def test_a_peer_method_runs_through_run_method(tmp_path):
    split = tmp_path / "split.csv"
    noisy.write_split(SMALL, DATA, noise=0.4, split_csv=split, confusion_csv=tmp_path / "c.csv", info_json=tmp_path / "s.json")
    peers = {**SMALL, "peer_trainer": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 50, "target_batch": 10, "epochs": 2}}
    run = tmp_path / "l2rw"
    metrics = noisy.run_method(noisy.rule_params(peers, "l2rw"), DATA, method="l2rw", noise=0.4, seed=0, device="cpu",
                               split_csv=split, metrics_json=run / "metrics.json", checkpoint=run / "model.ckpt",
                               scores_csv=run / "scores.csv")
    assert 0 <= metrics["accuracy"] <= 1 and metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert (run / "model.ckpt").exists()
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["provenance"]["trainer"]["target_batch"] == 10 and "peers" in saved["provenance"]
    scores = pd.read_csv(run / "scores.csv")
    assert list(scores.columns) == ["index", "label", "true_label", "noisy", "score", "draws"] and len(scores) == 110
    assert (scores.draws == 2).all() and scores.score.mean() == pytest.approx(1.0, abs=0.2)
    assert metrics["score_mean_clean"] == pytest.approx(scores.score[~scores.noisy].mean())
    glc = noisy.run_method(peers, DATA, method="glc", noise=0.4, seed=0, device="cpu", split_csv=split,
                           metrics_json=tmp_path / "glc.json", checkpoint=tmp_path / "glc.ckpt")
    np.testing.assert_allclose(np.sum(glc["corruption"], axis=1), 1.0, atol=1e-5)  # GLC's C, row-stochastic
    with pytest.raises(ValueError, match="scores_csv is only written by l2rw"):
        noisy.run_method(peers, DATA, method="joint", noise=0.4, seed=0, device="cpu", split_csv=split,
                         metrics_json=tmp_path / "j.json", checkpoint=tmp_path / "j.ckpt", scores_csv=tmp_path / "j.csv")


def test_three_methods_end_to_end_on_generated_data(tmp_path):
    split, conf = tmp_path / "split.csv", tmp_path / "confusion.csv"
    info = noisy.write_split(SMALL, DATA, noise=0.4, split_csv=split, confusion_csv=conf, info_json=tmp_path / "s.json")
    assert info["n_target"] == 50 and info["n_source"] == 110 and info["target_per_class"] == [5] * 10
    np.testing.assert_allclose(np.diag(noisy.read_confusion(conf)), 0.6)
    out = {}
    for method in ("noisy_baseline", "soseleto", "finetune"):
        run = tmp_path / method
        out[method] = noisy.run_method(
            SMALL, DATA, method=method, noise=0.4, seed=0, device="cpu", split_csv=split,
            metrics_json=run / "metrics.json", checkpoint=run / "model.ckpt",
            alpha_csv=run / "alpha.csv" if method == "soseleto" else None,
            init_checkpoint=tmp_path / "noisy_baseline" / "model.ckpt" if method == "finetune" else None)
        assert (run / "model.ckpt").exists()
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n_test"] == 60
        assert metrics["realised_noise"] == pytest.approx(info["realised_noise"])
        assert metrics["provenance"]["method"] == method and metrics["seconds_per_epoch"] > 0
    alpha = pd.read_csv(tmp_path / "soseleto" / "alpha.csv")
    assert list(alpha.columns) == ["index", "label", "true_label", "noisy", "alpha"] and len(alpha) == 110
    assert alpha.alpha.between(0, 1.1 + 1e-6).all() and alpha.alpha.std() > 0
    assert out["finetune"]["init_accuracy"] == pytest.approx(out["noisy_baseline"]["accuracy"])
    assert len(out["finetune"]["history"]) == 1 and out["finetune"]["n_target"] == 50
    # a fine-tune from a checkpoint written for other baseline settings is refused
    other = {**SMALL, "baseline": {**SMALL["baseline"], "epochs": 3}}
    with pytest.raises(ValueError, match="different config"):
        noisy.run_method(other, DATA, method="finetune", noise=0.4, seed=0, device="cpu", split_csv=split,
                         metrics_json=tmp_path / "x.json", checkpoint=tmp_path / "x.ckpt",
                         init_checkpoint=tmp_path / "noisy_baseline" / "model.ckpt")


def test_killed_run_resumes_from_its_resume_file(tmp_path):
    split = tmp_path / "split.csv"
    noisy.write_split(SMALL, DATA, noise=0.4, split_csv=split, confusion_csv=tmp_path / "c.csv",
                      info_json=tmp_path / "s.json")
    kw = dict(method="noisy_baseline", noise=0.4, seed=0, device="cpu", split_csv=split)
    one = {**SMALL, "baseline": {**SMALL["baseline"], "epochs": 1}}
    noisy.run_method(one, DATA, metrics_json=tmp_path / "a.json", checkpoint=tmp_path / "a.ckpt", **kw)
    full = noisy.run_method(SMALL, DATA, metrics_json=tmp_path / "b.json", checkpoint=tmp_path / "b.ckpt", **kw)
    # a run "killed" after epoch 1 leaves its resume file; rerunning finishes epoch 2 only
    state = torch.load(tmp_path / "a.ckpt", weights_only=False)
    state["config"] = noisy.checkpoint_config("noisy_baseline", noisy.config_from_mapping(SMALL).baseline, noise=0.4, seed=0,
                                                data_cfg=DATA)
    torch.save(state, resume_path(tmp_path / "c.ckpt"))
    resumed = noisy.run_method(SMALL, DATA, metrics_json=tmp_path / "c.json", checkpoint=tmp_path / "c.ckpt", **kw)
    assert resumed["epochs_this_call"] == 1 and resumed["accuracy"] == full["accuracy"]
