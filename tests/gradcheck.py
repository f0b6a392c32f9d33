"""Helpers shared by the tests that check alpha-update products against the per-sample reference."""

import torch

from soseleto.core.models import build_classifier, build_features
from soseleto.core.rng import seeded


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
