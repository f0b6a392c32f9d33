"""Results are those of the code before the one-loop refactor, bit for bit (CPU, one thread).

``tests/reference/pre_refactor.json`` was written by the code before the refactor (commit
5e25336) with the script ``tests/reference/make_reference.py`` of commit d8d41e2. Each scenario here rebuilds the
same run through today's API -- the same data, seeds and settings -- and compares per-epoch
losses, alpha or scores, accuracy and every tensor of the trained state. Tensors are compared by
the SHA-256 of their bytes when this machine's CPU capability and torch version match the
reference's; otherwise (other kernels may round differently) by their sums, to 1e-5.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from soseleto.config import (DataConfig, NoisySplitConfig, PairedConfig, PeerConfig, PlainConfig, SideConfig,
                             SoseletoConfig, SyntheticConfig)
from soseleto.core.loop import Labeled, train
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import generator, seeded
from soseleto.core.soseleto import Soseleto
from soseleto.data import images, sets
from soseleto.experiments import detection, noisy, synthetic, transfer
from soseleto.methods.plain import train_plain

from builders import run_peer

REF = json.loads((Path(__file__).parent / "reference" / "pre_refactor.json").read_text())
EXACT = (REF["_meta"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
         and REF["_meta"]["torch"] == torch.__version__)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def digest(t: torch.Tensor) -> list:
    t = t.detach().cpu().contiguous()
    d = t.double()
    return [hashlib.sha256(t.numpy().tobytes()).hexdigest(), float(d.sum()), float((d * d).sum())]


def assert_state(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        if EXACT:
            assert got[key][0] == want[key][0], f"{key} differs"
        else:
            np.testing.assert_allclose(got[key][1:], want[key][1:], rtol=1e-5, atol=1e-7, err_msg=key)


def assert_values(got, want) -> None:
    if EXACT:
        assert list(got) == list(want)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-5, atol=1e-7)


def module_state(*modules) -> dict:
    return {f"{i}.{name}": digest(t) for i, m in enumerate(modules) for name, t in m.state_dict().items()}


def checkpoint_state(path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    out = {}
    for key, value in state.items():
        if isinstance(value, dict) and key not in ("config", "optimizer"):
            out.update({f"{key}.{n}": digest(t) for n, t in value.items() if isinstance(t, torch.Tensor)})
        elif isinstance(value, torch.Tensor):
            out[key] = digest(value)
    return out


def losses(history, target=True) -> list:
    return [[h.loss_source, h.loss_target] if target else [h.loss_source] for h in history]


def tiny_sets(name, n_source, n_target, n_test):
    x, y = sets.generated(name, "train", n_source + n_target, seed=0)
    xe, ye = sets.generated(name, "test", n_test, seed=0)
    mean, std = images.channel_stats(x)
    xf, xef = images.to_float(x, mean=mean, std=std), images.to_float(xe, mean=mean, std=std)
    ys = y[:n_source].clone()
    g = generator(123)
    flipped = torch.rand(n_source, generator=g) < 0.3
    ys[flipped] = torch.randint(0, 10, (int(flipped.sum()),), generator=g)
    return Labeled(xf[:n_source], ys), Labeled(xf[n_source:], y[n_source:]), Labeled(xef, ye)


def net(model, shape, k, *, seed):
    with seeded(seed):
        f, dim = build_features(model, shape)
        return f, build_classifier(dim, k)


BASE = dict(lr_p=0.01, momentum=0.9, weight_decay=5e-4, epochs=2)
PAPER = dict(alpha_step="raw", target_grad_decay=0.0)  # the step as it was before the options existed
SOS = SoseletoConfig(**BASE, **PAPER, lr_alpha=100.0, source_batch=32, target_batch=10)


def test_soseleto_noisy_mode_ghost_alignment():
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    f, h = net("lenet", (1, 28, 28), 10, seed=0)
    tr = Soseleto(f, h, None, n_source=len(src), n_target=len(tgt), cfg=SOS)
    hist = train(tr, src, tgt, schedule=SOS.schedule, seed=0)
    want = REF["soseleto_noisy_lenet"]
    assert tr.alignment == want["alignment"] == "ghost"
    assert_values(np.ravel(losses(hist)), np.ravel(want["losses"]))
    assert_values(tr.alpha.tolist(), want["alpha"])
    assert tr.accuracy(test) == pytest.approx(want["accuracy"], abs=0 if EXACT else 0.05)
    assert_state(module_state(f, h), want["state"])


def test_soseleto_transfer_mode_forward_mode_batchnorm_dataset_scale():
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    f, hs = net("bn_convnet", (1, 28, 28), 5, seed=1)
    with seeded(2):
        ht = build_classifier(32, 3)
    cfg = SoseletoConfig(**{**BASE, **PAPER, "lr_alpha": 1e4, "source_batch": 32, "target_batch": 10, "loss_scale": "dataset",
                            "shared_classifier": False})
    tr = Soseleto(f, hs, ht, n_source=len(src), n_target=len(tgt), cfg=cfg)
    hist = train(tr, Labeled(src.x, src.y % 5), Labeled(tgt.x, tgt.y % 3), schedule=cfg.schedule, seed=1)
    want = REF["soseleto_transfer_bn"]
    assert tr.alignment == want["alignment"] == "forward"
    assert_values(np.ravel(losses(hist)), np.ravel(want["losses"]))
    assert_values(tr.alpha.tolist(), want["alpha"])
    assert_state(module_state(f, hs, ht), want["state"])


def test_soseleto_alpha_grad_all_by_forward_mode_on_cifar_quick():
    src, tgt, test = tiny_sets("cifar10", 64, 20, 30)
    f, h = net("cifar_quick", (3, 32, 32), 10, seed=3)
    cfg = SoseletoConfig(**{**BASE, **PAPER, "lr_alpha": 100.0, "source_batch": 16, "target_batch": 10, "alpha_grad": "all",
                            "alpha_init": 0.7})
    tr = Soseleto(f, h, None, n_source=len(src), n_target=len(tgt), cfg=cfg, alignment="forward")
    hist = train(tr, src, tgt, schedule=cfg.schedule, seed=3)
    want = REF["soseleto_all_cifar_forward"]
    assert_values(np.ravel(losses(hist)), np.ravel(want["losses"]))
    assert_values(tr.alpha.tolist(), want["alpha"])
    assert_state(module_state(f, h), want["state"])


def test_plain_sgd():
    src, _, test = tiny_sets("mnist", 96, 30, 40)
    f, h = net("lenet", (1, 28, 28), 10, seed=4)
    hist = train_plain(f, h, src, PlainConfig(**BASE, batch=32), seed=4)
    want = REF["plain_lenet"]
    assert_values(np.ravel(losses(hist, target=False)), np.ravel(want["losses"]))
    assert_state(module_state(f, h), want["state"])


@pytest.mark.parametrize("i, method", enumerate(("joint", "l2rw", "glc", "noise_layer")))
def test_peer_methods(i, method):
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    f, h = net("lenet", (1, 28, 28), 10, seed=5 + i)
    res = run_peer(method, f, h, src, tgt, PairedConfig(**BASE, source_batch=32, target_batch=10),
                     PeerConfig(glc_noisy_epochs=1), seed=5 + i)
    want = REF[f"peer_{method}"]
    assert_values([h.loss_source for h in res.history], [row[0] for row in want["losses"]])
    if method in ("joint", "l2rw"):
        assert_values([h.loss_target for h in res.history], [row[1] for row in want["losses"]])
    if "scores" in want:
        assert_values(res.scores.tolist(), want["scores"])
    for key, value in want["extra"].items():
        assert_values(np.ravel(res.extra[key]), np.ravel(value))
    assert_state(module_state(f, h), want["state"])


# -- the experiments, end to end on generated stand-ins ----------------------------------------------
NOISY_DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=160, generated_test=60)
NOISY = {"split": NoisySplitConfig(dataset="cifar10", n_target=50),
         "soseleto": SoseletoConfig(lr_p=0.02, lr_alpha=100.0, momentum=0.9, weight_decay=0.0, source_batch=50,
                                    target_batch=10, epochs=2, **PAPER),
         "noisy_baseline": PlainConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, batch=50, epochs=2),
         "finetune": PlainConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, batch=10, epochs=1),
         "peers": PairedConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, source_batch=50, target_batch=10, epochs=2)}


def compare_run(metrics: dict, ckpt, want: dict) -> None:
    assert_values([h["loss_source"] for h in metrics["history"]], [h["loss_source"] for h in want["history"]])
    if "loss_target" in want["history"][0] and want["history"][0]["loss_target"] == want["history"][0]["loss_target"]:
        assert_values([h["loss_target"] for h in metrics["history"]], [h["loss_target"] for h in want["history"]])
    assert metrics["accuracy"] == pytest.approx(want["accuracy"], abs=0 if EXACT else 0.05)
    assert_state(checkpoint_state(ckpt), want["state"])


def test_noisy_experiment_every_method(tmp_path):
    split = {"split": tmp_path / "split.csv", "confusion": tmp_path / "c.csv", "info": tmp_path / "s.json"}
    noisy.write_split(NOISY["split"], NOISY_DATA, noise=0.4, outputs=split)
    frame = pd.read_csv(split["split"])
    assert frame[["index", "role", "label"]].to_dict("list") == REF["noisy_split"]
    for method in ("noisy_baseline", "soseleto", "finetune", "joint", "l2rw", "glc", "noise_layer"):
        d = tmp_path / method
        outputs = {"metrics": d / "metrics.json", "checkpoint": d / "checkpoint.pt"}
        column = {"soseleto": "alpha", "l2rw": "scores"}.get(method)
        if column:
            outputs[column] = d / f"{column}.csv"
        init = (tmp_path / "noisy_baseline" / "checkpoint.pt", NOISY["noisy_baseline"]) if method == "finetune" else None
        settings = NOISY.get(method, NOISY["peers"])
        m = noisy.run_method(method, settings, split_cfg=NOISY["split"], model="auto", data=NOISY_DATA, noise=0.4,
                             seed=0, device="cpu", split_csv=split["split"], outputs=outputs, init=init,
                             options=PeerConfig(glc_noisy_epochs=1) if settings is NOISY["peers"] else None)
        want = REF[f"noisy_{method}"]
        compare_run(m, d / "checkpoint.pt", want)
        if column:
            assert_values(pd.read_csv(outputs[column]).iloc[:, 4].tolist(), want["alpha" if column == "alpha" else "score"])
        for key in ("corruption", "noise_matrix", "init_accuracy"):
            if key in want:
                assert_values(np.ravel(m[key]), np.ravel(want[key]))
    table = detection.run_cleanlab(NOISY["noisy_baseline"], folds=2, split_cfg=NOISY["split"], model="auto",
                                   data=NOISY_DATA, noise=0.4, seed=0, device="cpu", split_csv=split["split"],
                                   scores_csv=tmp_path / "cleanlab.csv")
    assert_values(table.score.tolist(), REF["noisy_cleanlab"]["score"])
    assert table.flagged.astype(bool).tolist() == REF["noisy_cleanlab"]["flagged"]


def test_transfer_experiment_every_method(tmp_path):
    data = DataConfig(source="generated", dir="unused", download=False, generated_train=300, generated_test=120)
    task = transfer.Task(SideConfig("svhn", (0, 1, 2, 3, 4)), SideConfig("mnist", (5, 6, 7, 8, 9)), 28, "auto")
    old_defaults = dict(lr_p=1e-4, momentum=0.0, weight_decay=0.0)
    settings = {
        "target_only": PlainConfig(**old_defaults, batch=256, epochs=3),
        "pretrain": PlainConfig(**old_defaults, batch=256, epochs=2),
        "fine_tuning": PlainConfig(**old_defaults, batch=256, epochs=2),
        "soseleto": SoseletoConfig(**old_defaults, **PAPER, source_batch=256, target_batch=32, epochs=2,
                                   lr_alpha=100.0, shared_classifier=False),
        "two_stage": SoseletoConfig(**old_defaults, **PAPER, source_batch=256, target_batch=32, epochs=1, lr_alpha=1.0),
    }
    sp = tmp_path / "splits"
    transfer.write_source_split(task.source, data, sp / "src.csv")
    transfer.write_target_split(task.target, data, n_target=10, seed=0,
                                outputs={"target": sp / "tgt.csv", "test": sp / "test.csv"})
    splits = {"source": str(sp / "src.csv"), "target": str(sp / "tgt.csv"), "test": str(sp / "test.csv")}
    inputs = {"target_only": {k: splits[k] for k in ("target", "test")}, "pretrain": {"source": splits["source"]},
              "fine_tuning": {"target": splits["target"], "test": splits["test"],
                              "init": tmp_path / "pretrain" / "ck.pt"},
              "soseleto": splits, "two_stage": {**splits, "init": tmp_path / "soseleto" / "ck.pt"}}
    inits = {"fine_tuning": settings["pretrain"], "two_stage": settings["soseleto"]}
    for method in ("target_only", "pretrain", "fine_tuning", "soseleto", "two_stage"):
        d = tmp_path / method
        outputs = {"metrics": d / "metrics.json", "checkpoint": d / "ck.pt", "alpha": d / "alpha.csv"}
        m = transfer.run_and_save(transfer.TransferRun(
            method, settings[method], task, data, 0, "cpu", inputs[method], outputs,
            n_target=None if method == "pretrain" else 10, init=inits.get(method),
            options="stage1" if method == "two_stage" else None))
        want = REF[f"transfer_{method}"]
        compare_run(m, d / "ck.pt", want)
        if "alpha" in want:
            assert_values(pd.read_csv(d / "alpha.csv").alpha.tolist(), want["alpha"])
        if "pseudo_label_accuracy" in want:
            assert m["pseudo_label_accuracy"] == want["pseudo_label_accuracy"]


def test_synthetic_experiment(tmp_path):
    cfg = SyntheticConfig(n_source=100, n_noisy=20, n_target=20, trainer=SoseletoConfig(
        lr_p=0.3, lr_alpha=200.0, momentum=0.0, weight_decay=0.0, alpha_init=0.5, source_batch=100, target_batch=20,
        epochs=5, **PAPER))
    outputs = {"points": tmp_path / "p.csv", "history": tmp_path / "h.csv", "metrics": tmp_path / "m.json"}
    summary = synthetic.run_and_save(cfg, seed=0, device="cpu", outputs=outputs)
    want = REF["synthetic"]
    assert_values(pd.read_csv(outputs["points"]).alpha.tolist(), want["alpha"])
    assert_values(pd.read_csv(outputs["history"]).mean_alpha.tolist(), want["history"])
    for key, value in want["summary"].items():
        assert summary[key] == pytest.approx(value, rel=0 if EXACT else 1e-5, nan_ok=True)
