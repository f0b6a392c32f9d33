"""Argument helpers of the torch-function handlers (:mod:`soseleto.core.torch_args`)."""

from soseleto.core.torch_args import bind_args, pair


def test_bind_args_orders_positional_keyword_and_default_values():
    names = ("input", "weight", "bias", "stride")
    assert bind_args(names, (1, 2), {"stride": 4}, bias=None, stride=1) == (1, 2, None, 4)
    assert bind_args(names, (1, 2, 3, 5), {}, bias=None, stride=1) == (1, 2, 3, 5)


def test_pair():
    assert pair(2) == [2, 2] and pair((1, 3)) == [1, 3] and pair([4, 5]) == [4, 5]
