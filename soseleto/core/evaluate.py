"""Evaluation of a (features, classifier) pair on held-out tensors."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict(features: nn.Module, head: nn.Module, x: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
    """Class predictions ``(N,)`` in eval mode, computed on the modules' device."""
    device = next(head.parameters()).device
    features.eval(), head.eval()
    return torch.cat([head(features(x[i : i + batch_size].to(device))).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(features: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``(x, y)`` classified correctly."""
    pred = predict(features, head, x)
    return float((pred == y.to(pred.device)).float().mean())


@torch.no_grad()
def predict_proba(features: nn.Module, head: nn.Module, x: torch.Tensor, *, batch_size: int = 2048) -> torch.Tensor:
    """Softmax probabilities ``(N, K)`` in eval mode, computed on the modules' device."""
    device = next(head.parameters()).device
    features.eval(), head.eval()
    return torch.cat([head(features(x[i : i + batch_size].to(device))).softmax(1) for i in range(0, len(x), batch_size)])
