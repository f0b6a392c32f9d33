"""Networks as (features, classifier) (:mod:`soseleto.core.models`)."""

import numpy as np
import pytest
import torch

from soseleto.config import sections
from soseleto.core.models import (CAFFE_FILLERS, MIN_SIDE, MODELS, NATIVE_SIDE, WEIGHT_INITS, auto_model, build,
                                  build_classifier, build_features, check_fits, choose_model)


def test_model_follows_the_image_shape():
    assert choose_model((1, 28, 28)) == "lenet"
    assert choose_model((3, 32, 32)) == "cifar_quick"
    assert choose_model((1, 8, 8)) == "cifar_quick"
    assert choose_model((1, 4, 4)) == "mlp"
    assert choose_model((2,)) == "mlp"


@pytest.mark.parametrize("name,in_shape,dim", [("mlp", (2,), 32), ("lenet", (1, 28, 28), 500),
                                               ("cifar_quick", (3, 32, 32), 64), ("bn_convnet", (3, 8, 8), 32),
                                               ("resnet18", (1, 32, 32), 512)])
def test_features_give_the_stated_dimension(name, in_shape, dim):
    features, d = build_features(name, in_shape)
    assert d == dim
    features.eval()
    assert features(torch.zeros(2, *in_shape)).shape == (2, dim)


def test_build_is_seeded_and_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    features, heads = build("auto", (1, 28, 28), [5, 2], seed=7)
    assert torch.equal(torch.rand(3), expected)  # the global generator was not consumed
    assert isinstance(features[0][0], torch.nn.Conv2d)  # auto: LeNet for gray 28x28 images
    assert [h.out_features for h in heads] == [5, 2] and all(h.in_features == 500 for h in heads)
    again, heads2 = build("lenet", (1, 28, 28), [5, 2], seed=7)
    for a, b in zip([*features.parameters(), *heads[0].parameters(), *heads[1].parameters()],
                    [*again.parameters(), *heads2[0].parameters(), *heads2[1].parameters()]):
        assert torch.equal(a, b)
    other, _ = build("lenet", (1, 28, 28), [5, 2], seed=8)
    assert not torch.equal(next(other.parameters()), next(features.parameters()))
    mlp, (head,) = build("mlp", (2,), [2], seed=0, hidden=5, depth=3)
    assert head.in_features == 5 and sum(isinstance(m, torch.nn.ReLU) for m in mlp) == 3


def test_unknown_model_and_single_class_are_errors():
    with pytest.raises(ValueError, match=r"model='vgg' is unknown"):
        build_features("vgg", (3, 32, 32))
    with pytest.raises(ValueError, match="n_classes=1"):
        build_classifier(10, 1)
    assert set(MODELS) == {"mlp", "lenet", "cifar_quick", "bn_convnet", "resnet18"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_min_side_is_the_smallest_image_a_network_takes(name):
    side = MIN_SIDE[name]
    for c in (1, 3):
        features, dim = build_features(name, (c, side, side + 3))  # non-square: the smaller side counts
        features.eval()
        assert features(torch.zeros(2, c, side, side + 3)).shape == (2, dim)
        if side > 1:
            with pytest.raises(RuntimeError):
                build_features(name, (c, side - 1, side - 1))[0].eval()(torch.zeros(2, c, side - 1, side - 1))
            with pytest.raises(ValueError, match=rf"model {name} needs images of at least {side}x{side} pixels, "
                                                 rf"but these are {side - 1}x{side + 3}"):
                check_fits(name, (c, side - 1, side + 3))
        check_fits(name, (c, side, side))


def test_auto_scales_small_images_up_to_the_networks_own_size():
    assert auto_model((1, 28, 28)) == ("lenet", None) and auto_model((1, 64, 48)) == ("lenet", None)
    assert auto_model((1, 8, 8)) == ("lenet", (28, 28))
    assert auto_model((1, 16, 8)) == ("lenet", (56, 28))  # aspect ratio kept
    assert auto_model((3, 32, 32)) == ("cifar_quick", None) and auto_model((3, 8, 8)) == ("cifar_quick", (32, 32))
    assert auto_model((3, 28, 40)) == ("cifar_quick", (32, 46))
    for name, side in NATIVE_SIDE.items():
        assert side >= MIN_SIDE[name]
    with pytest.raises(ValueError, match="model='vgg' is unknown"):
        check_fits("vgg", (1, 28, 28))


def _weight_layers(features, heads):
    layers = [m for m in features.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return layers + list(heads)


def test_caffe_init_draws_the_prototxt_fillers_and_zero_biases():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    features, heads = build("cifar_quick", (3, 32, 32), [10, 5], seed=3, weight_init="caffe")
    assert torch.equal(torch.rand(3), expected)  # the caller's generator is untouched
    layers = _weight_layers(features, heads)
    stds = [layer.weight.std().item() for layer in layers]
    # conv1 0.0001, conv2 0.01, conv3 0.01, ip1 0.1, every classifier ip2's 0.1
    np.testing.assert_allclose(stds, [1e-4, 1e-2, 1e-2, 0.1, 0.1, 0.1], rtol=0.1)
    assert all(layer.weight.mean().abs() < 0.2 * s for layer, s in zip(layers, stds))
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in layers)
    again, heads2 = build("auto", (3, 32, 32), [10, 5], seed=3, weight_init="caffe")  # auto = cifar_quick here
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(layers, _weight_layers(again, heads2)))
    other, _ = build("cifar_quick", (3, 32, 32), [10, 5], seed=4, weight_init="caffe")
    assert not torch.equal(_weight_layers(other, [])[0].weight, layers[0].weight)


def test_caffe_init_of_lenet_is_caffes_xavier_filler():
    features, (head,) = build("lenet", (1, 28, 28), [10], seed=0, weight_init="caffe")
    for layer, fan_in in zip(_weight_layers(features, [head]), [25, 500, 800, 500]):
        bound = (3 / fan_in) ** 0.5  # uniform in +-sqrt(3 / fan_in): std sqrt(1 / fan_in)
        assert 0.95 * bound < layer.weight.abs().max() <= bound
        assert layer.weight.std().item() == pytest.approx(fan_in ** -0.5, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0


def test_pytorch_init_is_the_default_and_unknown_inits_are_errors():
    default, (h1,) = build("cifar_quick", (3, 32, 32), [10], seed=1)
    explicit, (h2,) = build("cifar_quick", (3, 32, 32), [10], seed=1, weight_init="pytorch")
    assert all(torch.equal(a, b) for a, b in zip([*default.parameters(), *h1.parameters()],
                                                 [*explicit.parameters(), *h2.parameters()]))
    assert h1.bias.abs().sum() > 0  # PyTorch's own biases, not Caffe's zeros
    with pytest.raises(ValueError, match=r"weight_init='he' is unknown"):
        build("lenet", (1, 28, 28), [10], seed=0, weight_init="he")
    with pytest.raises(ValueError, match=r"no Caffe prototxt for model='resnet18'"):
        build("resnet18", (3, 32, 32), [10], seed=0, weight_init="caffe")
    with pytest.raises(ValueError, match=r"model='mlp'"):
        build("auto", (2,), [2], seed=0, weight_init="caffe")  # auto resolves first
    assert sections.WEIGHT_INITS == WEIGHT_INITS and set(CAFFE_FILLERS) <= set(MODELS)
