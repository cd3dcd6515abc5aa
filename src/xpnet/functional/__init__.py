"""Stateless operations, forward and backward, written once against the array API standard.

Every function takes arrays of one backend and returns arrays of that backend on the same
device. Each op ``f`` has ``f_forward`` (output plus what the backward needs) and
``f_backward`` beside it, in the same module.
"""

from .activation import relu, relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward
from .conv import Conv2dSaved, conv2d, conv2d_backward, conv2d_forward
from .linear import LinearSaved, linear, linear_backward, linear_forward
from .pool import (
    Pool2dSaved,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .softmax import (
    CrossEntropySaved,
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_forward,
    log_softmax,
    log_softmax_backward,
    mse_loss,
    mse_loss_backward,
    softmax,
    softmax_backward,
)

__all__ = [
    "Conv2dSaved",
    "CrossEntropySaved",
    "LinearSaved",
    "Pool2dSaved",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "linear",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "log_softmax_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "mse_loss",
    "mse_loss_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
]
