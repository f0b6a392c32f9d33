"""Configs, tiny problems and small networks shared by the tests (among them the networks and
random tangents of the tests that check the alpha-update products against the per-sample reference).

The tests were written against the pre-refactor ``TrainerConfig``, whose defaults differ from
today's sections (``SoseletoConfig`` defaults to momentum 0.9 and weight decay 5e-4, for
instance). The helpers here start from those old defaults, so that a test states every value it
relies on and never picks up a changed default silently.
"""

import torch

from soseleto.config import PairedConfig, PeerConfig, PlainConfig, SoseletoConfig
from soseleto.config import methods as registry
from soseleto.core.loop import Labeled
from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded

# the defaults of the pre-refactor TrainerConfig
OLD_SGD = {"lr_p": 1e-4, "momentum": 0.0, "weight_decay": 0.0}
OLD_PAIRED = {**OLD_SGD, "source_batch": 256, "target_batch": 32, "epochs": 10, "log_every": 1, "checkpoint_every": 1}
OLD_SOSELETO = {**OLD_PAIRED, "lr_alpha": 1.0, "alpha_init": 1.0, "alpha_min": 0.0, "alpha_max": 1.1,
                "loss_scale": "batch_mean", "alpha_grad": "features", "shared_classifier": True,
                "alpha_step": "raw", "target_grad_decay": 0.0}  # the paper's step (options added since)


def soseleto_config(**kw) -> SoseletoConfig:
    return SoseletoConfig(**{**OLD_SOSELETO, **kw})


def paired_config(**kw) -> PairedConfig:
    return PairedConfig(**{**OLD_PAIRED, **kw})


def plain_config(**kw) -> PlainConfig:
    """``batch`` is the old ``source_batch``."""
    base = {**OLD_SGD, "batch": 256, "epochs": 10, "log_every": 1, "checkpoint_every": 1}
    return PlainConfig(**{**base, **kw})


def blobs(n: int, dim: int = 4, k: int = 3, *, seed: int, scale: float = 1.0) -> Labeled:
    """``n`` random points ``(n, dim)`` with random labels in ``[0, k)``."""
    g = torch.Generator().manual_seed(seed)
    return Labeled(torch.randn(n, dim, generator=g) * scale, torch.randint(0, k, (n,), generator=g))


def mlp(in_shape=(2,), k=3, hidden=8, seed=0):
    """A one-layer MLP ``(features, classifier)`` initialised from ``seed``."""
    with seeded(seed):
        f, d = build_features("mlp", in_shape, hidden=hidden, depth=1)
        return f, build_classifier(d, k)


def batch2d(n, k=3, seed=0):
    """``n`` random 2-D points and labels in ``[0, k)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, k, (n,), generator=g)


class Killed(Exception):
    """Stands for a job killed in the middle of a run."""


def dies_on_second_call():
    """A monitor that "kills" the run while epoch 2 is evaluated: its checkpoint then holds epoch 1."""
    calls = []

    def monitor():
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return 0.0

    return monitor


def run_peer(method, features, head, source, target, cfg, options=None, *, seed, device="cpu", **kw):
    """A noisy-label method of the registry trained directly on tensors, as
    :func:`soseleto.experiments.noisy.run_method` does once it has loaded its split."""
    runner = registry.get("noisy", method).runner()
    return runner(features, head, source, target, cfg, PeerConfig() if options is None else options, seed=seed,
                  device=torch.device(device), name=method, **kw)


# -- the alpha-update products against the per-sample reference (test_forward_mode, test_ghost) ---------
def net(name, in_shape, n_classes=3, **kw):
    """(features, classifier) of model ``name``, initialised under seed 0."""
    with seeded(0):
        features, dim = build_features(name, in_shape, **kw)
        return features, build_classifier(dim, n_classes)


def random_tangents(module, seed):
    """A random direction for every parameter of ``module`` (name -> tensor)."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in module.named_parameters()}


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def noisy_digits(root, *, seed: int, noise: float = 0.3, target_per_class: int = 10, n_test: int = 450) -> dict:
    """scikit-learn's 8x8 digits (1,797 real images) as the ``.npz`` files of a noisy-mode fit:
    ``test`` (``n_test`` random images), ``target`` (``target_per_class`` clean images per class)
    and ``source`` (the rest, a fraction ``noise`` of its labels flipped to another class, drawn
    with ``seed``); ``true`` holds the source's true labels. Pixels 0..16 become uint8 0..255."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = np.rint(digits.images * 255 / 16).astype(np.uint8), digits.target.astype(np.int64)
    g = np.random.default_rng(seed)
    perm = g.permutation(len(y))
    test, rest = perm[:n_test], perm[n_test:]
    target = np.concatenate([rest[y[rest] == c][:target_per_class] for c in range(10)])
    source = np.setdiff1d(rest, target)
    noisy = y[source].copy()
    flip = g.choice(len(source), round(noise * len(source)), replace=False)
    noisy[flip] = (noisy[flip] + g.integers(1, 10, len(flip))) % 10  # another class, uniformly
    paths = {name: f"{root}/{name}.npz" for name in ("source", "target", "test")}
    np.savez(paths["source"], x=x[source], y=noisy)
    np.savez(paths["target"], x=x[target], y=y[target])
    np.savez(paths["test"], x=x[test], y=y[test])
    np.save(f"{root}/true.npy", y[source])
    return {**paths, "true": f"{root}/true.npy"}
