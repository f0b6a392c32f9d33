"""Write tests/reference/pre_refactor.json with the package as of commit 5e25336 (before the
one-loop refactor). Run once, on CPU, single-threaded: ``python tests/reference/make_reference.py``.

Each scenario records what a run produces: per-epoch losses, alpha or per-sample scores, test
accuracy, and every tensor of the trained state as (sha256 of its bytes, float64 sum, sum of
squares). tests/test_reference.py rebuilds the same runs with the current code and compares.
"""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soseleto import data, label_errors, noisy, synthetic, transfer
from soseleto.baselines import train_plain
from soseleto.config import PeerConfig, TrainerConfig
from soseleto.evaluate import accuracy
from soseleto.models import build_classifier, build_features
from soseleto.peers import train_peer
from soseleto.rng import generator, seeded
from soseleto.trainer import Labeled, Soseleto

OUT = Path(__file__).with_name("pre_refactor.json")


def digest(t: torch.Tensor) -> list:
    t = t.detach().cpu().contiguous()
    d = t.double()
    return [hashlib.sha256(t.numpy().tobytes()).hexdigest(), float(d.sum()), float((d * d).sum())]


def state_digest(*modules) -> dict:
    out = {}
    for i, m in enumerate(modules):
        for name, t in m.state_dict().items():
            out[f"{i}.{name}"] = digest(t)
    return out


def losses(history) -> list:
    return [[h.loss_source, h.loss_target] for h in history]


def tiny_sets(name: str, n_source: int, n_target: int, n_test: int, *, flip: float = 0.3):
    """Generated stand-ins, standardised; source labels partly flipped (seeded)."""
    x, y = data.generated(name, "train", n_source + n_target, seed=0)
    xe, ye = data.generated(name, "test", n_test, seed=0)
    mean, std = data.channel_stats(x)
    xf, xef = data.to_float(x, mean=mean, std=std), data.to_float(xe, mean=mean, std=std)
    ys = y[:n_source].clone()
    g = generator(123)
    flipped = torch.rand(n_source, generator=g) < flip
    ys[flipped] = torch.randint(0, 10, (int(flipped.sum()),), generator=g)
    return Labeled(xf[:n_source], ys), Labeled(xf[n_source:], y[n_source:]), Labeled(xef, ye)


def net(model: str, shape, k: int, *, seed: int, heads: int = 1):
    with seeded(seed):
        f, dim = build_features(model, shape)
        hs = [build_classifier(dim, k) for _ in range(heads)]
    return f, hs


def method_level() -> dict:
    out = {}
    src, tgt, test = tiny_sets("mnist", 96, 30, 40)
    base = dict(lr_p=0.01, lr_alpha=100.0, momentum=0.9, weight_decay=5e-4, source_batch=32, target_batch=10, epochs=2)

    # SOSELETO, noisy-label mode, LeNet (ghost alignment)
    f, (h,) = net("lenet", (1, 28, 28), 10, seed=0)
    tr = Soseleto(f, h, None, n_source=len(src), n_target=len(tgt), cfg=TrainerConfig(**base))
    hist = tr.fit(src, tgt, seed=0)
    out["soseleto_noisy_lenet"] = {"alignment": tr.alignment, "losses": losses(hist), "alpha": tr.alpha.tolist(),
                                   "accuracy": tr.accuracy(test), "state": state_digest(f, h)}

    # SOSELETO, transfer mode, BatchNorm network (forward mode), loss scale 'dataset'
    ys5, yt3 = Labeled(src.x, src.y % 5), Labeled(tgt.x, tgt.y % 3)
    f, (hs,) = net("bn_convnet", (1, 28, 28), 5, seed=1)
    with seeded(2):
        ht = build_classifier(32, 3)
    cfg = TrainerConfig(**{**base, "lr_alpha": 1e4, "loss_scale": "dataset", "shared_classifier": False})
    tr = Soseleto(f, hs, ht, n_source=len(src), n_target=len(tgt), cfg=cfg)
    hist = tr.fit(ys5, yt3, seed=1)
    out["soseleto_transfer_bn"] = {"alignment": tr.alignment, "losses": losses(hist), "alpha": tr.alpha.tolist(),
                                   "accuracy": tr.accuracy(Labeled(test.x, test.y % 3)), "state": state_digest(f, hs, ht)}

    # SOSELETO, shared classifier with alpha_grad='all', CIFAR-10 Quick by forward mode
    s3, t3, e3 = tiny_sets("cifar10", 64, 20, 30)
    f, (h,) = net("cifar_quick", (3, 32, 32), 10, seed=3)
    cfg = TrainerConfig(**{**base, "alpha_grad": "all", "alpha_init": 0.7, "source_batch": 16})
    tr = Soseleto(f, h, None, n_source=len(s3), n_target=len(t3), cfg=cfg, alignment="forward")
    hist = tr.fit(s3, t3, seed=3)
    out["soseleto_all_cifar_forward"] = {"alignment": tr.alignment, "losses": losses(hist), "alpha": tr.alpha.tolist(),
                                         "accuracy": tr.accuracy(e3), "state": state_digest(f, h)}

    # plain SGD
    f, (h,) = net("lenet", (1, 28, 28), 10, seed=4)
    hist = train_plain(f, h, src, TrainerConfig(**base), seed=4)
    out["plain_lenet"] = {"losses": [[x.loss_source] for x in hist], "accuracy": accuracy(f, h, test.x, test.y),
                          "state": state_digest(f, h)}

    # the peers
    for i, method in enumerate(("joint", "l2rw", "glc", "noise_layer")):
        f, (h,) = net("lenet", (1, 28, 28), 10, seed=5 + i)
        res = train_peer(method, f, h, src, tgt, TrainerConfig(**base), PeerConfig(glc_noisy_epochs=1), seed=5 + i)
        rec = {"losses": [[x.loss_source, x.loss_target] for x in res.history], "accuracy": accuracy(f, h, test.x, test.y),
               "state": state_digest(f, h)}
        if res.scores is not None:
            rec["scores"] = res.scores.tolist()
        rec["extra"] = {k: np.asarray(v).tolist() for k, v in res.extra.items()}
        out[f"peer_{method}"] = rec
    return out


NOISY_DATA = {"source": "generated", "dir": "unused", "download": False, "generated_train": 160, "generated_test": 60}
NOISY_MAP = {
    "noise_levels": [0.4], "n_target": 50,
    "methods": ["noisy_baseline", "soseleto", "finetune", "joint", "l2rw", "glc", "noise_layer"],
    "trainer": {"lr_p": 0.02, "lr_alpha": 100.0, "momentum": 0.9, "source_batch": 50, "target_batch": 10, "epochs": 2},
    "baseline": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 50, "epochs": 2},
    "finetune": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 10, "epochs": 1},
    "peer_trainer": {"lr_p": 0.02, "momentum": 0.9, "source_batch": 50, "target_batch": 10, "epochs": 2},
    "peers": {"glc_noisy_epochs": 1},
    "cleanlab_folds": 2,
}


def run_record(metrics: dict, ckpt: Path, table: Path | None = None, column: str | None = None) -> dict:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    tensors = {}
    for key, value in state.items():
        if isinstance(value, dict) and key not in ("config", "optimizer"):
            for name, t in value.items():
                if isinstance(t, torch.Tensor):
                    tensors[f"{key}.{name}"] = digest(t)
        elif isinstance(value, torch.Tensor):
            tensors[key] = digest(value)
    rec = {"accuracy": metrics["accuracy"], "history": metrics["history"], "state": tensors,
           **{k: v for k, v in metrics.items() if k.endswith(("_mean_clean", "_mean_noisy")) or k in
              ("init_accuracy", "corruption", "noise_matrix", "pseudo_label_accuracy")}}
    if table is not None:
        rec[column] = pd.read_csv(table)[column].tolist()
    return rec


def experiment_level(tmp: Path) -> dict:
    out = {}
    noisy.write_split(NOISY_MAP, NOISY_DATA, noise=0.4, split_csv=tmp / "split.csv", confusion_csv=tmp / "c.csv",
                      info_json=tmp / "s.json")
    out["noisy_split"] = pd.read_csv(tmp / "split.csv")[["index", "role", "label"]].to_dict("list")
    for method in NOISY_MAP["methods"]:
        d = tmp / method
        kw = {}
        if method == "soseleto":
            kw["alpha_csv"] = str(d / "alpha.csv")
        if method == "l2rw":
            kw["scores_csv"] = str(d / "scores.csv")
        if method == "finetune":
            kw["init_checkpoint"] = str(tmp / "noisy_baseline" / "model.ckpt")
        m = noisy.run_method(NOISY_MAP, NOISY_DATA, method=method, noise=0.4, seed=0, device="cpu",
                             split_csv=str(tmp / "split.csv"), metrics_json=str(d / "metrics.json"),
                             checkpoint=str(d / "model.ckpt"), **kw)
        table = kw.get("alpha_csv") or kw.get("scores_csv")
        out[f"noisy_{method}"] = run_record(m, d / "model.ckpt", Path(table) if table else None,
                                            "alpha" if method == "soseleto" else "score")
    sc = label_errors.run_cleanlab(NOISY_MAP, NOISY_DATA, noise=0.4, seed=0, device="cpu",
                                   split_csv=str(tmp / "split.csv"), scores_csv=str(tmp / "cleanlab.csv"))
    out["noisy_cleanlab"] = {"score": sc.score.tolist(), "flagged": sc.flagged.astype(bool).tolist()}

    tdata = {"source": "generated", "dir": "unused", "download": False, "generated_train": 300, "generated_test": 120}
    tmap = {"n_target": [10], "soseleto": {"epochs": 2, "lr_alpha": 100.0, "shared_classifier": False}, "target_only": {"epochs": 3},
            "pretrain": {"epochs": 2}, "finetune": {"epochs": 2}, "two_stage": {"epochs": 1, "shared_classifier": True}}
    sp = tmp / "splits"
    transfer.write_split("source", tdata, sp / "src.csv", classes=[0, 1, 2, 3, 4])
    transfer.write_split("target", tdata, sp / "tgt.csv", classes=[5, 6, 7, 8, 9], n_target=10, seed=0)
    transfer.write_split("test", tdata, sp / "test.csv", classes=[5, 6, 7, 8, 9])
    ins = {"source": str(sp / "src.csv"), "target": str(sp / "tgt.csv"), "test": str(sp / "test.csv")}
    for method in ("target_only", "pretrain", "fine_tuning", "soseleto", "two_stage"):
        d = tmp / "tr" / method
        outs = {"metrics": str(d / "metrics.json"), "checkpoint": str(d / "ck.pt"), "alpha": str(d / "alpha.csv")}
        inputs = dict(ins)
        if method == "pretrain":
            inputs = {"source": ins["source"]}
        if method == "target_only":
            inputs.pop("source")
        if method == "fine_tuning":
            inputs = {"target": ins["target"], "test": ins["test"], "pretrained": str(tmp / "tr" / "pretrain" / "ck.pt")}
        if method == "two_stage":
            inputs["stage1"] = str(tmp / "tr" / "soseleto" / "ck.pt")
        m = transfer.run_and_save(tmap, tdata, method=method, seed=0, device="cpu", inputs=inputs, outputs=outs,
                                  n_target=10)
        has_alpha = method in ("soseleto", "two_stage")
        out[f"transfer_{method}"] = run_record(m, d / "ck.pt", d / "alpha.csv" if has_alpha else None,
                                               "alpha" if has_alpha else None)

    syn = {"n_source": 100, "n_noisy": 20, "n_target": 20,
           "trainer": {"lr_p": 0.3, "lr_alpha": 200.0, "alpha_init": 0.5, "source_batch": 100, "target_batch": 20,
                       "epochs": 5}}
    summary = synthetic.run_and_save(syn, seed=0, device="cpu", points_csv=tmp / "p.csv", history_csv=tmp / "h.csv",
                                     metrics_json=tmp / "m.json")
    out["synthetic"] = {"summary": summary, "alpha": pd.read_csv(tmp / "p.csv").alpha.tolist(),
                        "history": pd.read_csv(tmp / "h.csv").mean_alpha.tolist()}
    return out


def main() -> None:
    torch.set_num_threads(1)
    ref = {"_meta": {"commit": "5e25336", "torch": torch.__version__,
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": 1}}
    ref.update(method_level())
    with tempfile.TemporaryDirectory() as tmp:
        ref.update(experiment_level(Path(tmp)))
    OUT.write_text(json.dumps(ref, indent=0, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(ref) - 1} scenarios)", file=sys.stderr)


if __name__ == "__main__":
    main()
