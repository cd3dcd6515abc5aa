"""Stateless operations, forward and backward, written once against the array API standard.

Every function takes arrays of one backend and returns arrays of that backend on the same
device. Each op ``f`` has ``f_forward`` (the output plus what the backward needs, its
*saved* state) and ``f_backward(grad_out, saved)`` beside it, in the same module. These
are the definitions of the ops; a backend may register faster versions of some of them in
:mod:`xpnet.kernels`, which each op consults first.
"""

from .._saved import (
    BatchNormSaved,
    Conv2dSaved,
    CrossEntropySaved,
    LinearSaved,
    MSESaved,
    Pool2dSaved,
)
from .activation import (
    relu,
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    tanh,
    tanh_backward,
    tanh_forward,
)
from .batchnorm import batch_norm, batch_norm_backward, batch_norm_forward
from .conv import conv2d, conv2d_backward, conv2d_forward
from .linear import linear, linear_backward, linear_forward
from .pool import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_forward,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .softmax import (
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_forward,
    cross_entropy_gradient,
    cross_entropy_per_sample,
    log_softmax,
    log_softmax_backward,
    log_softmax_forward,
    mse_loss,
    mse_loss_backward,
    mse_loss_forward,
    softmax,
    softmax_backward,
    softmax_forward,
)

__all__ = [
    "BatchNormSaved",
    "Conv2dSaved",
    "CrossEntropySaved",
    "LinearSaved",
    "MSESaved",
    "Pool2dSaved",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "conv2d",
    "conv2d_backward",
    "conv2d_forward",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "cross_entropy_gradient",
    "cross_entropy_per_sample",
    "linear",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "log_softmax_backward",
    "log_softmax_forward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "mse_loss",
    "mse_loss_backward",
    "mse_loss_forward",
    "relu",
    "relu_backward",
    "relu_forward",
    "sigmoid",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax",
    "softmax_backward",
    "softmax_forward",
    "tanh",
    "tanh_backward",
    "tanh_forward",
]
