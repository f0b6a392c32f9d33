import json

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto import transfer
from soseleto.config import TransferConfig, from_dict

DATA = {"source": "generated", "dir": "unused", "download": False, "generated_train": 400, "generated_test": 150}
TINY = {
    "soseleto": {"lr_p": 0.01, "momentum": 0.9, "source_batch": 32, "target_batch": 10, "epochs": 1, "shared_classifier": False},
    "two_stage": {"lr_p": 0.01, "momentum": 0.9, "source_batch": 32, "target_batch": 10, "epochs": 1},
    "target_only": {"lr_p": 0.01, "source_batch": 10, "epochs": 3},
    "pretrain": {"lr_p": 0.01, "source_batch": 32, "epochs": 1},
    "finetune": {"lr_p": 0.01, "source_batch": 10, "epochs": 3},
}


def test_target_split_is_class_balanced_with_remapped_labels():
    y = torch.arange(10).repeat(30)  # 30 images of each digit
    df = transfer.target_split(y, [5, 6, 7, 8, 9], 20, seed=3)
    assert len(df) == 20 and df.label.value_counts().to_dict() == {5: 4, 6: 4, 7: 4, 8: 4, 9: 4}
    assert (df.target_label == df.label - 5).all()
    assert (y[torch.tensor(df.mnist_index.to_numpy())].numpy() == df.label.to_numpy()).all()
    # n_t = 20 is nested in n_t = 25 for the same seed; another seed draws another set
    assert set(df.mnist_index) < set(transfer.target_split(y, [5, 6, 7, 8, 9], 25, seed=3).mnist_index)
    assert set(df.mnist_index) != set(transfer.target_split(y, [5, 6, 7, 8, 9], 20, seed=4).mnist_index)
    with pytest.raises(ValueError, match="n_target=22"):
        transfer.target_split(y, [5, 6, 7, 8, 9], 22, seed=0)


def test_test_and_source_splits_keep_only_their_classes():
    y = torch.tensor([0, 5, 9, 3, 7, 4, 6, 8, 1, 2])
    test = transfer.test_split(y, [5, 6, 7, 8, 9])
    assert test.mnist_index.tolist() == [1, 2, 4, 6, 7] and test.target_label.tolist() == [0, 4, 2, 1, 3]
    src = transfer.source_split(y, [0, 1, 2, 3, 4])
    assert src.svhn_index.tolist() == [0, 3, 5, 8, 9] and src.label.tolist() == [0, 3, 4, 1, 2]


def _splits(tmp_path, n_target=20, source_classes=(0, 1, 2, 3, 4)):
    paths = {"source": tmp_path / "s.csv", "target": tmp_path / "t.csv", "test": tmp_path / "e.csv"}
    transfer.write_split("source", DATA, paths["source"], classes=list(source_classes))
    transfer.write_split("target", DATA, paths["target"], classes=[5, 6, 7, 8, 9], n_target=n_target, seed=0)
    transfer.write_split("test", DATA, paths["test"], classes=[5, 6, 7, 8, 9])
    return {k: str(v) for k, v in paths.items()}


def test_prepare_gives_gray_28x28_sets_with_remapped_labels(tmp_path):
    p = _splits(tmp_path)
    sets = transfer.prepare(DATA, size=28, source_csv=p["source"], target_csv=p["target"], test_csv=p["test"])
    assert sets.source.x.shape[1:] == (1, 28, 28) and sets.source.x.dtype == torch.float32  # SVHN was (3, 32, 32)
    assert set(sets.source.y.tolist()) == set(range(5)) and set(sets.source_label.tolist()) <= set(range(5))
    assert sets.target.x.shape == (20, 1, 28, 28) and sorted(set(sets.target.y.tolist())) == list(range(5))
    assert set(sets.test.y.tolist()) <= set(range(5)) and len(sets.test) == len(pd.read_csv(p["test"]))
    # MNIST sets are standardised with the statistics of the labelled target images
    assert abs(float(sets.target.x.mean())) < 1e-4 and abs(float(sets.source.x.mean())) < 1e-4
    pool, idx = transfer.unlabelled_pool(DATA, sets, [5, 6, 7, 8, 9])
    assert not set(idx) & set(sets.target_index) and set(pool.y.tolist()) <= set(range(5))


def test_index_file_for_other_data_is_an_error(tmp_path):
    p = _splits(tmp_path)
    other = {**DATA, "generated_train": 300}  # a different data set than the one the split was drawn from
    with pytest.raises(ValueError, match="does not match the loaded data set"):
        transfer.prepare(other, size=28, target_csv=p["target"], test_csv=p["test"])


@pytest.mark.parametrize(
    "override,match",
    [
        ({"n_target": [21]}, r"transfer\.n_target=21"),
        ({"appendix_c": {"n_target": 7}}, r"appendix_c\.n_target=7"),
        ({"soseleto": {"shared_classifier": True}}, r"soseleto\.shared_classifier"),
        ({"methods": ["soseleto", "magic"]}, r"methods"),
        ({"target_classes": [5, 5]}, r"target_classes"),
    ],
)
def test_bad_transfer_config_names_the_key(override, match):
    with pytest.raises(ValueError, match=match):
        transfer.config_from_mapping({**TINY, **override})


def test_config_ignores_seed_lists():
    cfg = transfer.config_from_mapping({**TINY, "seeds": [0, 1], "appendix_c": {"seeds": [0], "grid": 4}})
    assert isinstance(cfg, TransferConfig) and cfg.appendix_c.grid == 4 and cfg.source_classes == (0, 1, 2, 3, 4)
    assert cfg == from_dict(TransferConfig, {**TINY, "appendix_c": {"grid": 4}})


def test_tiny_soseleto_transfer_and_two_stage_runs(tmp_path):
    p = _splits(tmp_path)
    out = {m: {k: str(tmp_path / m / f) for k, f in [("metrics", "m.json"), ("checkpoint", "c.pt"), ("alpha", "a.csv")]}
           for m in ("soseleto", "two_stage")}
    m1 = transfer.run_and_save(TINY, DATA, method="soseleto", seed=0, n_target=20, device="cpu", inputs=p, outputs=out["soseleto"])
    assert 0 <= m1["accuracy"] <= 1 and m1["n_source"] == len(pd.read_csv(p["source"])) and len(m1["history"]) == 1
    alpha = pd.read_csv(out["soseleto"]["alpha"])
    assert list(alpha.columns) == ["svhn_index", "label", "alpha"]
    assert alpha.svhn_index.tolist() == pd.read_csv(p["source"]).svhn_index.tolist()
    assert alpha.alpha.between(0, 1.1).all() and alpha.alpha.std() > 0  # alpha moved
    saved = json.loads((tmp_path / "soseleto" / "m.json").read_text())
    assert saved["provenance"]["config"]["data"]["source"] == "generated" and saved["method"] == "soseleto"

    inputs = {"target": p["target"], "test": p["test"], "stage1": out["soseleto"]["checkpoint"]}
    m2 = transfer.run_and_save(TINY, DATA, method="two_stage", seed=0, n_target=20, device="cpu", inputs=inputs,
                               outputs=out["two_stage"])
    a2 = pd.read_csv(out["two_stage"]["alpha"])
    assert len(a2) == m2["n_pool"] and 0 <= m2["pseudo_label_accuracy"] <= 1 and 0 <= m2["accuracy"] <= 1
    assert not set(a2.mnist_index) & set(pd.read_csv(p["target"]).mnist_index)


def test_stage1_checkpoint_of_another_config_is_refused(tmp_path):
    p = _splits(tmp_path)
    o = {"metrics": str(tmp_path / "m.json"), "checkpoint": str(tmp_path / "c.pt"), "alpha": str(tmp_path / "a.csv")}
    transfer.run_and_save(TINY, DATA, method="soseleto", seed=0, n_target=20, device="cpu", inputs=p, outputs=o)
    other = {**TINY, "soseleto": {**TINY["soseleto"], "lr_p": 0.02}}
    with pytest.raises(ValueError, match="different config"):
        transfer.run_and_save(other, DATA, method="two_stage", seed=0, n_target=20, device="cpu",
                              inputs={**p, "stage1": o["checkpoint"]}, outputs={**o, "checkpoint": str(tmp_path / "c2.pt")})


def test_fine_tuning_starts_from_the_pretrained_features(tmp_path):
    p = _splits(tmp_path)
    pre = {"metrics": str(tmp_path / "pm.json"), "checkpoint": str(tmp_path / "pc.pt")}
    m = transfer.run_and_save(TINY, DATA, method="pretrain", seed=1, device="cpu", inputs={"source": p["source"]}, outputs=pre)
    assert m["n_target"] is None and m["accuracy_on"] == "source train"
    ft = {"metrics": str(tmp_path / "fm.json"), "checkpoint": str(tmp_path / "fc.pt")}
    m = transfer.run_and_save(TINY, DATA, method="fine_tuning", seed=1, n_target=20, device="cpu",
                              inputs={"target": p["target"], "test": p["test"], "pretrained": pre["checkpoint"]}, outputs=ft)
    assert 0 <= m["accuracy"] <= 1 and len(m["history"]) == 3
    with pytest.raises(ValueError, match="method='bogus'"):
        transfer.run_and_save(TINY, DATA, method="bogus", seed=1, device="cpu", inputs={}, outputs={})


def test_classes_tag():
    assert transfer.classes_tag([0, 1, 2, 3, 4]) == "01234" and transfer.classes_tag(np.arange(10)) == "0123456789"
