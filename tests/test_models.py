"""Networks as (features, classifier) (:mod:`soseleto.core.models`)."""

import pytest
import torch

from soseleto.core.models import (MIN_SIDE, MODELS, NATIVE_SIDE, auto_model, build, build_classifier, build_features,
                                  check_fits, choose_model)


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
