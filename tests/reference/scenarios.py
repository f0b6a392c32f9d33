"""The runs behind ``pre_refactor.json``: each scenario trains on generated stand-ins with fixed data,
seeds and settings, and returns its record -- per-epoch losses, alpha or per-sample scores, test
accuracy, and every tensor of the trained state as (SHA-256 of its bytes, float64 sum, sum of
squares). ``tests/test_reference.py`` compares each record with the stored one;
``tests/reference/make_reference.py`` writes them all (CPU, one thread).

The stored records were written by the code before the one-loop refactor (commit 5e25336); these
functions rebuild the same runs through today's API.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from soseleto.config import (DataConfig, NoisySplitConfig, PairedConfig, PeerConfig, PlainConfig, SideConfig,
                             SoseletoConfig, SyntheticConfig)
from soseleto.config import methods as registry
from soseleto.core.evaluate import accuracy
from soseleto.core.loop import Labeled, train
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import generator, seeded
from soseleto.core.soseleto import Soseleto
from soseleto.data import images, sets
from soseleto.experiments import detection, noisy, synthetic, transfer
from soseleto.methods.plain import train_plain

BASE = dict(lr_p=0.01, momentum=0.9, weight_decay=5e-4, epochs=2)
PAPER = dict(alpha_step="raw", target_grad_decay=0.0)  # the step as it was before the options existed
SOS = SoseletoConfig(**BASE, **PAPER, lr_alpha=100.0, source_batch=32, target_batch=10)
PEERS = ("joint", "l2rw", "glc", "noise_layer")
SCENARIOS: dict[str, Callable[[], dict]] = {}


def scenario(*names: str):
    """Register a function that returns the records of ``names`` (one record, or several from one run)."""
    def register(fn):
        for name in names:
            SCENARIOS[name] = fn
        return fn
    return register


def digest(t: torch.Tensor) -> list:
    t = t.detach().cpu().contiguous()
    d = t.double()
    return [hashlib.sha256(t.numpy().tobytes()).hexdigest(), float(d.sum()), float((d * d).sum())]


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
    nan = float("nan")
    return [[h.loss_source, nan if h.loss_target is None else h.loss_target] if target else [h.loss_source]
            for h in history]


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


def _soseleto_record(tr: Soseleto, history, test: Labeled, *modules) -> dict:
    return {"alignment": tr.alignment, "losses": losses(history), "alpha": tr.alpha.tolist(),
            "accuracy": tr.accuracy(test), "state": module_state(*modules)}


# -- one method on tensors ---------------------------------------------------------------------------
@scenario("soseleto_noisy_lenet")
def soseleto_noisy_lenet() -> dict:
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    f, h = net("lenet", (1, 28, 28), 10, seed=0)
    tr = Soseleto(f, h, None, n_source=len(src), n_target=len(tgt), cfg=SOS)
    return {"soseleto_noisy_lenet": _soseleto_record(tr, train(tr, src, tgt, schedule=SOS.schedule, seed=0), test, f, h)}


@scenario("soseleto_transfer_bn")
def soseleto_transfer_bn() -> dict:
    """Transfer mode, a BatchNorm network (forward-mode alignment), ``loss_scale='dataset'``."""
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    f, hs = net("bn_convnet", (1, 28, 28), 5, seed=1)
    with seeded(2):
        ht = build_classifier(32, 3)
    cfg = SoseletoConfig(**{**BASE, **PAPER, "lr_alpha": 1e4, "source_batch": 32, "target_batch": 10,
                            "loss_scale": "dataset", "shared_classifier": False})
    tr = Soseleto(f, hs, ht, n_source=len(src), n_target=len(tgt), cfg=cfg)
    hist = train(tr, Labeled(src.x, src.y % 5), Labeled(tgt.x, tgt.y % 3), schedule=cfg.schedule, seed=1)
    return {"soseleto_transfer_bn": _soseleto_record(tr, hist, Labeled(test.x, test.y % 3), f, hs, ht)}


@scenario("soseleto_all_cifar_forward")
def soseleto_all_cifar_forward() -> dict:
    """Shared classifier with ``alpha_grad='all'``, CIFAR-10 Quick by forward mode."""
    src, tgt, test = tiny_sets("cifar10", 64, 20, 30)
    f, h = net("cifar_quick", (3, 32, 32), 10, seed=3)
    cfg = SoseletoConfig(**{**BASE, **PAPER, "lr_alpha": 100.0, "source_batch": 16, "target_batch": 10,
                            "alpha_grad": "all", "alpha_init": 0.7})
    tr = Soseleto(f, h, None, n_source=len(src), n_target=len(tgt), cfg=cfg, alignment="forward")
    hist = train(tr, src, tgt, schedule=cfg.schedule, seed=3)
    return {"soseleto_all_cifar_forward": _soseleto_record(tr, hist, test, f, h)}


@scenario("plain_lenet")
def plain_lenet() -> dict:
    src, _, test = tiny_sets("mnist", 96, 30, 40)
    f, h = net("lenet", (1, 28, 28), 10, seed=4)
    hist = train_plain(f, h, src, PlainConfig(**BASE, batch=32), seed=4)
    return {"plain_lenet": {"losses": losses(hist, target=False), "accuracy": accuracy(f, h, test.x, test.y),
                            "state": module_state(f, h)}}


@scenario(*(f"peer_{m}" for m in PEERS))
def peers() -> dict:
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    out = {}
    for i, method in enumerate(PEERS):
        f, h = net("lenet", (1, 28, 28), 10, seed=5 + i)
        res = registry.get("noisy", method).runner()(
            f, h, src, tgt, PairedConfig(**BASE, source_batch=32, target_batch=10), PeerConfig(glc_noisy_epochs=1),
            seed=5 + i, device=torch.device("cpu"), name=method)
        rec = {"losses": losses(res.history), "accuracy": accuracy(f, h, test.x, test.y), "state": module_state(f, h),
               "extra": {k: np.asarray(v).tolist() for k, v in res.extra.items()}}
        if res.scores is not None:
            rec["scores"] = res.scores.tolist()
        out[f"peer_{method}"] = rec
    return out


# -- the experiments, end to end on generated stand-ins ------------------------------------------------
NOISY_DATA = DataConfig(source="generated", dir="unused", download=False, generated_train=160, generated_test=60)
NOISY_SPLIT = NoisySplitConfig(dataset="cifar10", n_target=50)
NOISY = {"soseleto": SoseletoConfig(lr_p=0.02, lr_alpha=100.0, momentum=0.9, weight_decay=0.0, source_batch=50,
                                    target_batch=10, epochs=2, **PAPER),
         "noisy_baseline": PlainConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, batch=50, epochs=2),
         "finetune": PlainConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, batch=10, epochs=1)}
NOISY_PEERS = PairedConfig(lr_p=0.02, momentum=0.9, weight_decay=0.0, source_batch=50, target_batch=10, epochs=2)
RUN_KEYS = ("init_accuracy", "corruption", "noise_matrix", "pseudo_label_accuracy")


def run_record(metrics: dict, ckpt, table=None, column=None) -> dict:
    """A run of an experiment: its accuracy, history, checkpoint tensors, its own results and its
    per-sample table's ``column``."""
    rec = {"accuracy": metrics["accuracy"], "history": metrics["history"], "state": checkpoint_state(ckpt),
           **{k: v for k, v in metrics.items() if k.endswith(("_mean_clean", "_mean_noisy")) or k in RUN_KEYS}}
    if table is not None:
        rec[column] = pd.read_csv(table)[column].tolist()
    return rec


@scenario("noisy_split", "noisy_cleanlab", *(f"noisy_{m}" for m in ("noisy_baseline", "soseleto", "finetune", *PEERS)))
def noisy_experiment() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split = {"split": tmp / "split.csv", "confusion": tmp / "c.csv", "info": tmp / "s.json"}
        noisy.write_split(NOISY_SPLIT, NOISY_DATA, noise=0.4, outputs=split)
        out = {"noisy_split": pd.read_csv(split["split"])[["index", "role", "label"]].to_dict("list")}
        for method in ("noisy_baseline", "soseleto", "finetune", *PEERS):
            entry, d = registry.get("noisy", method), tmp / method
            outputs = {"metrics": d / "metrics.json", "checkpoint": d / "checkpoint.pt"}
            if entry.scores:
                outputs[entry.scores] = d / f"{entry.scores}.csv"
            init = (tmp / "noisy_baseline" / "checkpoint.pt", NOISY["noisy_baseline"]) if entry.starts_from else None
            m = noisy.run_method(method, NOISY.get(method, NOISY_PEERS), split_cfg=NOISY_SPLIT, model="auto",
                                 data=NOISY_DATA, noise=0.4, seed=0, device="cpu", split_csv=split["split"],
                                 outputs=outputs, init=init,
                                 options=PeerConfig(glc_noisy_epochs=1) if entry.options else None)
            column = None if entry.scores is None else ("alpha" if entry.scores == "alpha" else "score")
            out[f"noisy_{method}"] = run_record(m, outputs["checkpoint"], outputs.get(entry.scores), column)
        table = detection.run_cleanlab(NOISY["noisy_baseline"], folds=2, split_cfg=NOISY_SPLIT, model="auto",
                                       data=NOISY_DATA, noise=0.4, seed=0, device="cpu", split_csv=split["split"],
                                       scores_csv=tmp / "cleanlab.csv")
        out["noisy_cleanlab"] = {"score": table.score.tolist(), "flagged": table.flagged.astype(bool).tolist()}
    return out


TRANSFER = ("target_only", "pretrain", "fine_tuning", "soseleto", "two_stage")


@scenario(*(f"transfer_{m}" for m in TRANSFER))
def transfer_experiment() -> dict:
    data = DataConfig(source="generated", dir="unused", download=False, generated_train=300, generated_test=120)
    task = transfer.Task(SideConfig("svhn", (0, 1, 2, 3, 4)), SideConfig("mnist", (5, 6, 7, 8, 9)), 28, "auto")
    old = dict(lr_p=1e-4, momentum=0.0, weight_decay=0.0)
    settings = {
        "target_only": PlainConfig(**old, batch=256, epochs=3),
        "pretrain": PlainConfig(**old, batch=256, epochs=2),
        "fine_tuning": PlainConfig(**old, batch=256, epochs=2),
        "soseleto": SoseletoConfig(**old, **PAPER, source_batch=256, target_batch=32, epochs=2, lr_alpha=100.0,
                                   shared_classifier=False),
        "two_stage": SoseletoConfig(**old, **PAPER, source_batch=256, target_batch=32, epochs=1, lr_alpha=1.0),
    }
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        sp = Path(tmp) / "splits"
        transfer.write_source_split(task.source, data, sp / "src.csv")
        transfer.write_target_split(task.target, data, n_target=10, seed=0,
                                    outputs={"target": sp / "tgt.csv", "test": sp / "test.csv"})
        splits = {"source": str(sp / "src.csv"), "target": str(sp / "tgt.csv"), "test": str(sp / "test.csv")}
        for method in TRANSFER:
            entry, d = registry.get("transfer", method), Path(tmp) / method
            inputs = {k: v for k, v in splits.items() if k != "source" or any(s == "source" for s, _ in entry.passes)}
            if method == "pretrain":
                inputs = {"source": splits["source"]}
            if entry.starts_from:
                inputs["init"] = Path(tmp) / entry.starts_from / "ck.pt"
            outputs = {"metrics": d / "metrics.json", "checkpoint": d / "ck.pt", "alpha": d / "alpha.csv"}
            m = transfer.run_and_save(transfer.TransferRun(
                method, settings[method], task, data, 0, "cpu", inputs, outputs,
                n_target=None if method == "pretrain" else 10,
                init=settings[entry.starts_from] if entry.starts_from else None,
                options="stage1" if method == "two_stage" else None))
            alpha = entry.scores == "alpha"
            out[f"transfer_{method}"] = run_record(m, d / "ck.pt", d / "alpha.csv" if alpha else None,
                                                   "alpha" if alpha else None)
    return out


@scenario("synthetic")
def synthetic_experiment() -> dict:
    cfg = SyntheticConfig(n_source=100, n_noisy=20, n_target=20, trainer=SoseletoConfig(
        lr_p=0.3, lr_alpha=200.0, momentum=0.0, weight_decay=0.0, alpha_init=0.5, source_batch=100, target_batch=20,
        epochs=5, **PAPER))
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {"points": Path(tmp) / "p.csv", "history": Path(tmp) / "h.csv", "metrics": Path(tmp) / "m.json"}
        summary = synthetic.run_and_save(cfg, seed=0, device="cpu", outputs=outputs)
        return {"synthetic": {"summary": summary, "alpha": pd.read_csv(outputs["points"]).alpha.tolist(),
                              "history": pd.read_csv(outputs["history"]).mean_alpha.tolist()}}
