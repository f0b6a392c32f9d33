"""The alpha update of Algorithm 1, computed exactly and without per-sample gradients.

Equation (5) of the paper moves each source weight by ``lr_alpha * lr_p * q_j . g`` where
``q_j = c * d l_j / d theta`` (``c`` = 1/n_s in the paper, 1/|batch| with ``loss_scale=batch_mean``)
and ``g = dL_t/d theta`` is the target gradient. All the dot products ``d l_j/d theta . g`` are the
tangents of the per-sample losses under a forward-mode pass whose parameter tangents are ``g``, so
a single dual-number forward over the source batch returns them together with the losses
themselves. The primal half of that pass is an ordinary forward: it builds the autograd graph of the
source step and updates BatchNorm running statistics exactly once, as a plain step would.

With BatchNorm in train mode ``l_j`` depends on the whole batch through the batch statistics;
``q_j`` is then the gradient of ``l_j`` *as computed in its batch*, which is what both the
forward-mode pass and :func:`reference_alignment` return.
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def losses_and_alignment(
    features: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    feature_tangents: Mapping[str, torch.Tensor],
    classifier_tangents: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy losses and their directional derivatives, in one pass.

    Parameters
    ----------
    features, classifier
        The modules theta and phi; ``classifier(features(x))`` gives ``(B, K)`` logits.
    x, y
        Source batch ``(B, ...)`` and integer labels ``(B,)``.
    feature_tangents
        Direction for every parameter of ``features`` (name -> tensor of the parameter's shape),
        normally ``dL_t/d theta``.
    classifier_tangents
        Optional direction for the classifier parameters (shared-classifier mode with
        ``alpha_grad='all'``); ``None`` means a zero tangent.

    Returns
    -------
    losses : (B,) tensor
        ``l_j``, attached to the autograd graph of the parameters (backward it for the source step).
    alignment : (B,) tensor, detached
        ``d l_j / d params . tangents`` for each sample ``j``.
    """
    with fwad.dual_level():
        duals = {name: fwad.make_dual(p, feature_tangents[name]) for name, p in features.named_parameters()}
        h = functional_call(features, duals, (x,))  # (B, D), dual
        if classifier_tangents is None:
            logits = classifier(h)
        else:
            cduals = {name: fwad.make_dual(p, classifier_tangents[name]) for name, p in classifier.named_parameters()}
            logits = functional_call(classifier, cduals, (h,))
        losses, tangent = fwad.unpack_dual(F.cross_entropy(logits, y, reduction="none"))
    if tangent is None:  # no parameter had a tangent path to the loss
        tangent = torch.zeros_like(losses)
    return losses, tangent.detach()


def reference_alignment(
    features: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    feature_tangents: Mapping[str, torch.Tensor],
    classifier_tangents: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Slow, obviously-correct reference: one backward pass per sample, on copies of the modules
    (so BatchNorm running statistics of the originals are untouched). Returns ``(B,)``."""
    features, classifier = copy.deepcopy(features), copy.deepcopy(classifier)
    losses = F.cross_entropy(classifier(features(x)), y, reduction="none")
    named = list(features.named_parameters())
    tangents = [feature_tangents[n] for n, _ in named]
    if classifier_tangents is not None:
        cnamed = list(classifier.named_parameters())
        named += cnamed
        tangents += [classifier_tangents[n] for n, _ in cnamed]
    params = [p for _, p in named]
    out = []
    for j in range(len(losses)):
        grads = torch.autograd.grad(losses[j], params, retain_graph=True, allow_unused=True)
        out.append(sum((g * t).sum() for g, t in zip(grads, tangents) if g is not None))
    return torch.stack([torch.as_tensor(v, dtype=losses.dtype) for v in out]).detach()


def updated_alpha(
    alpha_b: torch.Tensor, alignment: torch.Tensor, *, step: float, lo: float, hi: float
) -> torch.Tensor:
    """Equation (5) with the clip range [lo, hi]: ``clip(alpha_b + step * alignment)``.

    ``step`` is ``lr_alpha * lr_p * c`` with ``c`` the per-sample loss scale, so that
    ``step * alignment = lr_alpha * lr_p * Q^T dL_t/d theta``.
    """
    return (alpha_b + step * alignment).clamp_(lo, hi)
