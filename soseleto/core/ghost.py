"""The alpha update and the weighted source gradient from one ordinary backward pass
("ghost" dot products), for networks whose samples never interact.

For a layer ``out = a W^T + b`` (or a convolution) the per-sample loss gradient is
``d l_j/dW = delta_j a_j^T`` with ``delta_j = d l_j/d out_j``, so its dot product with a direction
``G`` is ``<delta_j, a_j G^T + G_b>`` (for a convolution ``<delta_j, conv(a_j, G) + G_b>``). Summed
over layers this is exactly ``d l_j/d theta . g`` -- the tangent that :mod:`soseleto.core.forward_mode`
gets from forward mode -- at the cost of one extra product ``conv(a, G)`` per layer instead of the
two (``conv(da, W) + conv(a, dW)``) that forward mode needs.

A convolution with a small fan-in (``C_in * kh * kw <= PER_SAMPLE_MAX_FAN_IN``, e.g. the 3 x 5 x 5
first layer of CIFAR-10 Quick) takes another exact route: its per-sample gradients
``dW_j = delta_j U_j^T`` (``U_j`` the unfolded input) are small, and one batched product gives both
``dW = sum_j w_j dW_j`` and ``<dW_j, G>``. Such layers run convolutions far below the machine's
speed (on 2 CPU threads the two convolutions of the general path took 3x as long as the product).

It needs the *unweighted* ``delta_j`` even where ``alpha_j = 0``, so the backward pass is seeded
with ones and the weights enter only where parameter gradients are formed: every linear and
convolution layer runs as a custom autograd function whose backward passes ``delta`` down
unweighted and forms ``dW = sum_j w_j delta_j a_j^T``. Because every other layer acts on each
sample separately and linearly in its incoming gradient, the parameter gradients are those of
``sum_j w_j l_j`` -- exact, not approximate.

That last condition fails with BatchNorm in train mode (``l_j`` depends on the whole batch), so
:func:`supports` only accepts networks built from the layer types in ``_PER_SAMPLE``; everything
else uses forward mode.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from soseleto.core.torch_args import bind_args, pair

_PER_SAMPLE = (
    nn.Sequential, nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Identity,
)


def supports(*modules: nn.Module) -> bool:
    """Whether the ghost pass is exact for these modules: only per-sample layer types, so every
    parameter sits in a ``Linear`` or ``Conv2d`` (with numeric padding). A layer used twice is
    fine: each use adds its own term to both the gradient and the dot product."""
    for module in modules:
        for m in module.modules():
            if type(m) not in _PER_SAMPLE or (isinstance(m, nn.Conv2d) and isinstance(m.padding, str)):
                return False
    return True


def weighted_backward_and_alignment(
    features: nn.Module,
    classifier: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    feature_tangents: Mapping[str, torch.Tensor],
    classifier_tangents: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward over the source batch; accumulates ``d/dparams sum_j w_j l_j`` into
    the ``.grad`` of every parameter and returns ``(losses, alignment)``, both ``(B,)`` and detached.

    ``weights`` is ``(B,)`` (normally ``c * alpha_b``); the tangents are as in
    :func:`soseleto.core.forward_mode.losses_and_alignment`, whose ``alignment`` this one equals.
    Only valid when :func:`supports` holds.
    """
    tangents = {id(p): feature_tangents[n] for n, p in features.named_parameters()}
    if classifier_tangents is not None:
        tangents.update({id(p): classifier_tangents[n] for n, p in classifier.named_parameters()})
    state = _State(weights.detach(), tangents, torch.zeros(len(y), dtype=weights.dtype, device=weights.device))
    with _Ghost(state):
        losses = F.cross_entropy(classifier(features(x)), y, reduction="none")  # (B,)
    losses.sum().backward()  # seed 1: each layer sees the unweighted delta_j
    return losses.detach(), state.align


class _State:
    def __init__(self, weights: torch.Tensor, tangents: dict[int, torch.Tensor], align: torch.Tensor) -> None:
        self.weights, self.tangents, self.align = weights, tangents, align

    def bias_tangent(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        return None if bias is None else self.tangents.get(id(bias))

    def scaled(self, t: torch.Tensor) -> torch.Tensor:
        """``w_j * t_j`` for a ``(B, ...)`` tensor."""
        return t * self.weights.view(-1, *([1] * (t.dim() - 1)))

    def add_alignment(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """align_j += <a_j, b_j> for ``(B, ...)`` tensors, e.g. ``delta`` and ``(d out/d params) . G``."""
        self.align += torch.linalg.vecdot(a.flatten(1), b.flatten(1))


class _Ghost(TorchFunctionMode):
    """Routes ``F.linear``/``F.conv2d`` through the weighting autograd functions below."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return _Linear.apply(*bind_args(("input", "weight", "bias"), args, kwargs, bias=None), self.state)
        if func is F.conv2d:
            names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
            x, w, b, stride, padding, dilation, groups = bind_args(
                names, args, kwargs, bias=None, stride=1, padding=0, dilation=1, groups=1
            )
            conf = (pair(stride), pair(padding), pair(dilation), int(groups))
            return _Conv2d.apply(x, w, b, conf, self.state)
        return func(*args, **kwargs)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, state):  # x (B, ..., in)
        ctx.save_for_backward(x, weight)
        ctx.state, ctx.has_bias, ctx.bias_tangent = state, bias is not None, state.bias_tangent(bias)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):  # grad (B, ..., out), unweighted
        x, weight = ctx.saved_tensors
        state = ctx.state
        dx = grad @ weight if ctx.needs_input_grad[0] else None
        g2, x2 = grad.flatten(0, -2), x.flatten(0, -2)  # (B*, out), (B*, in)
        if x2.shape[1] < g2.shape[1]:  # weight whichever factor is smaller
            dw = g2.T @ state.scaled(x).flatten(0, -2)
        else:
            dw = state.scaled(grad).flatten(0, -2).T @ x2
        db = state.weights @ grad.reshape(len(grad), -1, grad.shape[-1]).sum(1) if ctx.has_bias else None
        tw, tb = state.tangents.get(id(weight)), ctx.bias_tangent
        if tw is not None:  # <delta, x G^T> = <delta G, x>: multiply on the smaller side
            if x2.shape[1] < g2.shape[1]:
                state.add_alignment(grad @ tw, x)
            else:
                state.add_alignment(grad, F.linear(x, tw))
        if tb is not None:
            state.align += grad.reshape(len(grad), -1, grad.shape[-1]).sum(1) @ tb
        return dx, dw, db, None


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, conf, state):  # x (B, C, H, W)
        ctx.save_for_backward(x, weight)
        ctx.conf, ctx.state, ctx.has_bias, ctx.bias_tangent = conf, state, bias is not None, state.bias_tangent(bias)
        return F.conv2d(x, weight, bias, *conf)

    @staticmethod
    def backward(ctx, grad):  # grad (B, C_out, H', W'), unweighted
        x, weight = ctx.saved_tensors
        (stride, padding, dilation, groups), state = ctx.conf, ctx.state
        common = (stride, padding, dilation, False, [0, 0], groups)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.ops.aten.convolution_backward(grad, x, weight, None, *common, [True, False, False])[0]
        tw, tb = state.tangents.get(id(weight)), ctx.bias_tangent
        if groups == 1 and weight[0].numel() <= PER_SAMPLE_MAX_FAN_IN:
            dw = _per_sample_products(grad, x, weight, ctx.conf, state, tw)
        else:
            # dW is bilinear in (delta, x): weight whichever is smaller
            scale_x = x.numel() < grad.numel()
            dw = torch.ops.aten.convolution_backward(
                grad if scale_x else state.scaled(grad), state.scaled(x) if scale_x else x, weight, None,
                *common, [False, True, False],
            )[1]
            if tw is not None:
                state.add_alignment(grad, F.conv2d(x, tw, None, stride, padding, dilation, groups))
        grad_sum = grad.sum((2, 3)) if ctx.has_bias else None  # (B, C_out)
        db = state.weights @ grad_sum if ctx.has_bias else None
        if tb is not None:
            state.align += grad_sum @ tb
        return dx, dw, db, None, None


PER_SAMPLE_MAX_FAN_IN = 150  # C_in * kh * kw up to which a convolution uses per-sample gradients
UNFOLD_BUDGET = 2**22  # elements of one chunk of unfolded input (16 MiB in float32)


def _per_sample_products(grad, x, weight, conf, state: _State, tw) -> torch.Tensor:
    """``dW = sum_j w_j dW_j`` and ``align_j += <dW_j, G>`` from the per-sample gradients
    ``dW_j = delta_j U_j^T`` (``U_j`` = the unfolded input patches of sample ``j``).

    Used for convolutions with a small fan-in (an image network's first layer: 3 x 5 x 5), where
    ``dW_j`` is small and the two convolutions of the general path (``dW`` and ``conv(x, G)``)
    run far below the machine's speed; one batched matrix product gives both. The batch is
    processed in chunks whose unfolded input holds at most ``UNFOLD_BUDGET`` elements.
    Returns ``dW``; adds to ``state.align`` when ``tw`` (the tangent ``G``) is given.
    """
    stride, padding, dilation, _ = conf
    n, kernel = len(x), weight.shape[2:]
    fan_in = weight[0].numel()
    chunk = max(1, UNFOLD_BUDGET // (fan_in * grad[0, 0].numel()))
    dw = torch.zeros(weight.shape[0], fan_in, dtype=grad.dtype, device=grad.device)
    delta = grad.flatten(2)  # (B, C_out, L)
    for s in range(0, n, chunk):
        u = F.unfold(x[s : s + chunk], kernel, dilation, padding, stride)  # (c, fan_in, L)
        pw = torch.bmm(delta[s : s + chunk], u.transpose(1, 2)).flatten(1)  # (c, C_out * fan_in)
        dw.view(-1).addmv_(pw.T, state.weights[s : s + chunk])
        if tw is not None:
            state.align[s : s + chunk] += pw @ tw.reshape(-1)
    return dw.view_as(weight)
