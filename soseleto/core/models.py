"""Networks split into features (theta) and classifier (phi), as in section 3 of the paper.

A model is built as a pair ``(features, classifier)``: ``features`` maps an input batch to a
``(B, D)`` representation, ``classifier`` maps it to ``(B, n_classes)`` logits. SOSELETO shares
``features`` between source and target and gives each its own classifier in transfer mode (or one
shared classifier in noisy-label mode). Adding a model is one function registered in ``MODELS``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from soseleto.config import WEIGHT_INITS
from soseleto.core.rng import seeded


def mlp_features(in_shape: tuple[int, ...], *, hidden: int = 32, depth: int = 2) -> tuple[nn.Module, int]:
    """ReLU MLP on flat inputs, e.g. the 2-D synthetic problem. Returns (module, feature_dim)."""
    in_dim = int(torch.tensor(in_shape).prod())
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers), hidden


def lenet_features(in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """Caffe's LeNet: conv5-20, maxpool2, conv5-50, maxpool2, fc500, ReLU. Input (B, C, 28, 28)."""
    c, h, w = in_shape
    body = nn.Sequential(
        nn.Conv2d(c, 20, 5), nn.MaxPool2d(2),  # (B, 20, 12, 12) for 28x28
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),  # (B, 50, 4, 4)
        nn.Flatten(),
    )
    flat = _flat_dim(body, in_shape)
    return nn.Sequential(body, nn.Linear(flat, 500), nn.ReLU()), 500


def cifar_quick_features(in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """Caffe's "CIFAR-10 Quick": (conv5-32, maxpool3/2, relu), (conv5-32, relu, avepool3/2),
    (conv5-64, relu, avepool3/2), fc64. Input (B, 3, 32, 32).

    Caffe rounds pooled sizes up (32 -> 16 -> 8 -> 4), hence ``ceil_mode=True``; like the
    prototxt there is no non-linearity between ip1 (fc64, the last feature layer) and ip2 (the
    classifier).
    """
    c, h, w = in_shape
    body = nn.Sequential(
        nn.Conv2d(c, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),  # (B, 32, 16, 16)
        nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),  # (B, 32, 8, 8)
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),  # (B, 64, 4, 4)
        nn.Flatten(),
    )
    flat = _flat_dim(body, in_shape)
    return nn.Sequential(body, nn.Linear(flat, 64)), 64


def bn_convnet_features(in_shape: tuple[int, ...], *, width: int = 16) -> tuple[nn.Module, int]:
    """A small conv net with BatchNorm, for testing the trainer with batch statistics."""
    c = in_shape[0]
    body = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return body, 2 * width


def resnet18_features(in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """torchvision's ResNet-18 up to its global average pool, flattened: ``(B, C, H, W) -> (B, 512)``.

    Everything before ``fc`` is the features; ``fc`` becomes the separate classifier. The stem is
    the ImageNet one (7x7/2 conv, 3x3/2 max pool), which 32x32 inputs also pass through (to 1x1 at
    the last stage); a first layer for ``C != 3`` input channels replaces ``conv1``.
    """
    from torchvision.models import resnet18

    net = resnet18(num_classes=10)
    if in_shape[0] != 3:
        net.conv1 = nn.Conv2d(in_shape[0], 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    return net, 512


MODELS: dict[str, Callable[..., tuple[nn.Module, int]]] = {
    "mlp": mlp_features,
    "lenet": lenet_features,
    "cifar_quick": cifar_quick_features,
    "bn_convnet": bn_convnet_features,
    "resnet18": resnet18_features,
}


def build_features(name: str, in_shape: tuple[int, ...], **kwargs) -> tuple[nn.Module, int]:
    """Build the feature extractor ``name`` for inputs of shape ``in_shape`` (no batch dim)."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; choose one of {sorted(MODELS)}")
    return MODELS[name](tuple(in_shape), **kwargs)


def build_classifier(feature_dim: int, n_classes: int) -> nn.Module:
    """The classifier phi: one linear layer on the features."""
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes} must be at least 2")
    return nn.Linear(feature_dim, n_classes)


# The smallest image side (pixels) each network takes: below it, its convolutions and pooling leave
# no pixel (tests/test_models.py checks each value is the smallest that builds and runs).
MIN_SIDE: dict[str, int] = {"mlp": 1, "lenet": 16, "cifar_quick": 8, "bn_convnet": 2, "resnet18": 1}
# The image side a network was made for (LeNet: MNIST's 28, CIFAR-10 Quick: CIFAR's 32). On smaller
# images both may train at chance (CIFAR-10 Quick on 8x8 digits does), so `auto` scales those up.
NATIVE_SIDE: dict[str, int] = {"lenet": 28, "cifar_quick": 32}


def check_fits(name: str, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the network and the image size when images of ``shape`` (C, H, W)
    are smaller than network ``name`` takes (:data:`MIN_SIDE`)."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; choose auto or one of {sorted(MODELS)}")
    c, h, w = shape
    if min(h, w) < MIN_SIDE[name]:
        raise ValueError(f"model {name} needs images of at least {MIN_SIDE[name]}x{MIN_SIDE[name]} pixels, but these are "
                         f"{h}x{w} ({c} channel{'s' if c > 1 else ''}); scale them up (--size), or use model auto, "
                         "which does, or mlp")


def auto_model(shape: tuple[int, int, int]) -> tuple[str, tuple[int, int] | None]:
    """``soseleto fit``'s ``auto`` for images of ``shape`` (C, H, W): ``(network, size)``.

    LeNet for gray images (C = 1), CIFAR-10 Quick for colour ones. Images whose smaller side is
    below the network's native side (:data:`NATIVE_SIDE`: 28 for LeNet, 32 for CIFAR-10 Quick) are
    to be scaled up, aspect ratio kept, until that side is the native one: ``size`` is the new
    (H, W), ``None`` when the images are used as they are.
    """
    c, h, w = shape
    name = "lenet" if c == 1 else "cifar_quick"
    side = NATIVE_SIDE[name]
    if min(h, w) >= side:
        return name, None
    scale = side / min(h, w)
    return name, (max(side, round(h * scale)), max(side, round(w * scale)))


def choose_model(shape: tuple[int, ...]) -> str:
    """The feature network that fits images of ``shape`` (C, H, W): LeNet for gray images of at
    least 16 px, CIFAR-10 Quick for other images of at least 8 px, otherwise an MLP."""
    if len(shape) != 3 or min(shape[1:]) < 8:
        return "mlp"
    return "lenet" if shape[0] == 1 and min(shape[1:]) >= 16 else "cifar_quick"


# Caffe's weight filler of each convolution / inner-product layer, in order; the last entry is the
# classifier's (ip2). A number is a "gaussian" filler's std, "xavier" Caffe's XavierFiller (uniform
# in +-sqrt(3 / fan_in), include/caffe/filler.hpp). Every bias has a "constant" filler, value 0.
# From BVLC/caffe:
#   cifar_quick: examples/cifar10/cifar10_quick_train_test.prototxt: conv1 std 0.0001, conv2 0.01,
#                conv3 0.01, ip1 0.1, ip2 0.1;
#   lenet:       examples/mnist/lenet_train_test.prototxt: "xavier" for conv1, conv2, ip1, ip2.
# Caffe's CIFAR-10 Quick sees mean-subtracted pixels in [0, 255] (std ~60), which its conv1 std is
# sized for: on standardised pixels (std 1) the same weights meet ~60x smaller inputs, hence the
# Table 1 protocol's noisy.input_scale: caffe (config/README.md, "Table 1 settings on real images").
CAFFE_FILLERS: dict[str, tuple[float | str, ...]] = {
    "cifar_quick": (1e-4, 1e-2, 1e-2, 0.1, 0.1),
    "lenet": ("xavier",) * 4,
}


def caffe_init_(features: nn.Module, heads: list[nn.Module], fillers: tuple[float | str, ...]) -> None:
    """Redraw, in place and from the global generator, the weights of the ``nn.Conv2d`` /
    ``nn.Linear`` layers of ``features`` (in order) with ``fillers[:-1]`` and of every head with
    ``fillers[-1]``; zero every bias."""
    layers = [m for m in features.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(layers) != len(fillers) - 1:
        raise ValueError(f"{len(layers)} weight layers in the features for {len(fillers) - 1} Caffe fillers")
    pairs = [*zip(layers, fillers), *((h, fillers[-1]) for h in heads)]
    with torch.no_grad():
        for layer, filler in pairs:
            if filler == "xavier":
                bound = (3.0 / layer.weight[0].numel()) ** 0.5  # Caffe's fan_in = count / num_output
                layer.weight.uniform_(-bound, bound)
            else:
                layer.weight.normal_(0.0, float(filler))
            if layer.bias is not None:
                layer.bias.zero_()


def build(model: str, in_shape: tuple[int, ...], classes: list[int], *, seed: int, weight_init: str = "pytorch",
          **kwargs) -> tuple[nn.Module, list[nn.Module]]:
    """Features ``model`` (``"auto"``: :func:`choose_model`) and one linear classifier per entry of
    ``classes`` (its class count), initialised from ``seed`` without touching the caller's RNG:
    ``weight_init="pytorch"`` keeps each layer's PyTorch default, ``"caffe"`` redraws every weight
    with the filler of the network's Caffe prototxt (:data:`CAFFE_FILLERS`) and zeroes the biases."""
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init={weight_init!r} is unknown; choose one of {list(WEIGHT_INITS)}")
    name = choose_model(tuple(in_shape)) if model == "auto" else model
    if weight_init == "caffe" and name not in CAFFE_FILLERS:
        raise ValueError(f"weight_init='caffe' has no Caffe prototxt for model={name!r}; it exists for "
                         f"{sorted(CAFFE_FILLERS)} (the paper's networks)")
    with seeded(seed):
        features, dim = build_features(name, in_shape, **kwargs)
        heads = [build_classifier(dim, k) for k in classes]
        if weight_init == "caffe":
            caffe_init_(features, heads, CAFFE_FILLERS[name])
        return features, heads


def _flat_dim(body: nn.Module, in_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, *in_shape)).shape[1])
