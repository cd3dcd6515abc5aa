"""Bad input gets a clear ValueError/TypeError naming the argument, the expected and the got value."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import functional as F
from xpnet import nn

from .helpers import on


@pytest.fixture
def conv_args(xp):
    x = on(xp, np.ones((2, 3, 6, 6)), "float32")
    w = on(xp, np.ones((4, 3, 3, 3)), "float32")
    return x, w


def test_conv_wrong_ndim(xp, conv_args):
    x, w = conv_args
    with pytest.raises(
        ValueError, match=r"conv2d: x must be 4-D \(N, C_in, H, W\); got shape \(3, 6, 6\) \(3-D\)"
    ):
        F.conv2d(x[0, ...], w)
    with pytest.raises(
        ValueError,
        match=r"conv2d: weight must be 4-D \(C_out, C_in, kH, kW\); got shape \(3, 3, 3\) \(3-D\)",
    ):
        F.conv2d(x, w[0, ...])


def test_conv_channel_mismatch(xp, conv_args):
    x, _ = conv_args
    w = on(xp, np.ones((4, 2, 3, 3)), "float32")
    with pytest.raises(
        ValueError,
        match=r"conv2d: x has 3 channels \(shape \(2, 3, 6, 6\)\) but weight expects C_in=2",
    ):
        F.conv2d(x, w)


def test_conv_bias_shape(xp, conv_args):
    x, w = conv_args
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\); got \(3,\)"):
        F.conv2d(x, w, on(xp, np.ones(3), "float32"))


def test_kernel_larger_than_padded_input(xp, conv_args):
    x, _ = conv_args
    w = on(xp, np.ones((4, 3, 9, 3)), "float32")
    with pytest.raises(
        ValueError, match=r"conv2d: kernel size \(9, 3\) is larger than the padded input \(8, 8\)"
    ):
        F.conv2d(x, w, padding=1)
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: kernel size \(7, 7\) is larger than the padded input \(6, 6\)",
    ):
        F.max_pool2d(x, 7)


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_stride_below_one(xp, conv_args, stride):
    x, w = conv_args
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1; got"):
        F.conv2d(x, w, stride=stride)
    with pytest.raises(ValueError, match=r"avg_pool2d: stride must be >= 1; got"):
        F.avg_pool2d(x, 2, stride=stride)


def test_negative_padding(xp, conv_args):
    x, w = conv_args
    with pytest.raises(ValueError, match=r"conv2d: padding must be >= 0; got -1"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"max_pool2d: padding must be >= 0; got \(0, -2\)"):
        F.max_pool2d(x, 2, padding=(0, -2))


def test_pool_padding_over_half_kernel(xp, conv_args):
    x, _ = conv_args
    with pytest.raises(
        ValueError,
        match=r"max_pool2d: padding must be at most half the kernel size \(2, 2\); got \(2, 2\)",
    ):
        F.max_pool2d(x, 2, padding=2)


@pytest.mark.parametrize("value", [1.5, "2", (1, 2, 3), True])
def test_kernel_size_type(xp, conv_args, value):
    x, _ = conv_args
    with pytest.raises(
        TypeError, match=r"max_pool2d: kernel_size must be an int or a pair of ints"
    ):
        F.max_pool2d(x, value)


def test_non_floating_input_to_conv(xp, conv_args):
    _, w = conv_args
    x = on(xp, np.ones((2, 3, 6, 6)), "int32")
    with pytest.raises(
        TypeError, match=r"conv2d: x must be a real floating array; got dtype .*int32"
    ):
        F.conv2d(x, w)


def test_dtype_mismatch(xp, conv_args):
    x, _ = conv_args
    w = on(xp, np.ones((4, 3, 3, 3)), "float64")
    with pytest.raises(
        TypeError, match=r"conv2d: dtypes must match: x is .*float32, weight is .*float64"
    ):
        F.conv2d(x, w)


def test_labels_out_of_range(xp):
    logits = on(xp, np.zeros((3, 4)), "float32")
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: labels must lie in \[0, 4\) for 4 classes; got values in \[0, 4\]",
    ):
        F.cross_entropy(logits, on(xp, [0, 1, 4], "int64"))
    with pytest.raises(ValueError, match=r"got values in \[-1, 2\]"):
        nn.CrossEntropyLoss()(logits, on(xp, [-1, 1, 2], "int64"))


def test_labels_non_integer_or_wrong_shape(xp):
    logits = on(xp, np.zeros((3, 4)), "float32")
    with pytest.raises(
        TypeError, match=r"cross_entropy: labels must be integer class indices; got dtype .*float32"
    ):
        F.cross_entropy(logits, on(xp, [0.0, 1.0, 2.0], "float32"))
    with pytest.raises(
        ValueError, match=r"cross_entropy: labels must have shape \(3,\); got \(2,\)"
    ):
        F.cross_entropy(logits, on(xp, [0, 1], "int64"))
    with pytest.raises(ValueError, match=r"cross_entropy: logits must be 2-D \(N, n_classes\)"):
        F.cross_entropy(logits[0, ...], on(xp, [0], "int64"))


def test_linear_shape_mismatch(xp):
    with pytest.raises(
        ValueError,
        match=r"linear: x must have shape \(\.\.\., 5\) to match weight \(3, 5\); got \(2, 4\)",
    ):
        F.linear(on(xp, np.ones((2, 4))), on(xp, np.ones((3, 5))))


def test_mixed_backends(xp, backend):
    other = "array_api_strict" if backend != "array_api_strict" else "numpy"
    x = on(xp, np.ones((1, 1, 4, 4)), "float32")
    w = xpnet.asarray(np.ones((1, 1, 3, 3)), backend=other, dtype="float32")
    with pytest.raises(
        TypeError,
        match=rf"conv2d: arrays from different backends cannot be mixed: x is {backend}, weight is {other}",
    ):
        F.conv2d(x, w)
    layer = nn.Linear(16, 2, backend=other)
    with pytest.raises(
        TypeError,
        match=rf"linear: arrays from different backends cannot be mixed: x is {backend}, weight is {other}",
    ):
        layer(xpnet.namespace(backend).reshape(x, (1, 16)))


def test_not_an_array():
    with pytest.raises(TypeError, match=r"conv2d: x must be an array .*; got list"):
        F.conv2d([[1.0]], np.ones((1, 1, 1, 1)))
    with pytest.raises(TypeError, match=r"relu: x must be an array .*; got float"):
        F.relu(1.0)


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\); got 1.0"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match=r"Conv2d: stride must be >= 1; got 0"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match=r"Linear: in_features must be a positive int; got 0"):
        nn.Linear(0, 3)
    with pytest.raises(
        TypeError, match=r"Sequential: layer 1 must be an xpnet Module; got function"
    ):
        nn.Sequential(nn.ReLU(), lambda x: x)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda: nn.Conv2d(0, 4, 3),
            ValueError,
            r"Conv2d: in_channels must be a positive int; got 0",
        ),
        (
            lambda: nn.Conv2d(1, 2.5, 3),
            ValueError,
            r"Conv2d: out_channels must be a positive int; got 2.5",
        ),
        (lambda: nn.Conv2d(1, 4, 0), ValueError, r"Conv2d: kernel_size must be >= 1; got 0"),
        (
            lambda: nn.Conv2d(1, 4, 3, padding=-1),
            ValueError,
            r"Conv2d: padding must be >= 0; got -1",
        ),
        (
            lambda: nn.Linear(3, True),
            ValueError,
            r"Linear: out_features must be a positive int; got True",
        ),
        (lambda: nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1; got 0"),
        (lambda: nn.AvgPool2d(2, stride=0), ValueError, r"AvgPool2d: stride must be >= 1; got 0"),
        (
            lambda: nn.MaxPool2d(2, padding=2),
            ValueError,
            r"MaxPool2d: padding must be at most half",
        ),
        (lambda: nn.MaxPool2d("2"), TypeError, r"MaxPool2d: kernel_size must be an int or a pair"),
        (lambda: nn.Dropout(-0.1), ValueError, r"Dropout: p must be in \[0, 1\); got -0.1"),
        (lambda: nn.Softmax(axis=1.0), TypeError, r"Softmax: axis must be an int; got 1.0"),
    ],
)
def test_every_layer_checks_its_arguments_at_construction(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_namespace_checks_hold_once_the_array_types_are_known():
    """The per-type cache of backends and namespaces changes no answer: known types still
    mix into a clear error, and what is not an array is still named."""
    from xpnet._validation import _KNOWN_TYPES, namespace_of

    x = np.ones((2, 2), dtype=np.float32)
    xp = namespace_of("f", x=x)
    assert namespace_of("f", x=x, w=x) is xp and _KNOWN_TYPES[np.ndarray][0] == "numpy"
    strict = xpnet.asarray(x, backend="array_api_strict")
    namespace_of("f", y=strict)
    with pytest.raises(TypeError, match=r"f: arrays from different backends cannot be mixed: "
                       r"x is numpy, y is array_api_strict"):  # fmt: skip
        namespace_of("f", x=x, y=strict)
    with pytest.raises(TypeError, match=r"f: y must be an array .*; got list"):
        namespace_of("f", x=x, y=[1.0])
