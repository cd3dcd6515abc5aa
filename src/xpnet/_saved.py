"""What each op's forward keeps for its backward: one named tuple per op.

These live apart from :mod:`xpnet.functional` and :mod:`xpnet.kernels` so that both import
them and neither imports the other's internals. ``made_by`` names the kernel backend whose
forward made the tuple (``None``: the generic array-API code); the backward takes the
matching implementation, whose layout of the saved arrays it knows (see
:func:`xpnet.kernels.backward_kernel`).
"""

from __future__ import annotations

from typing import NamedTuple

from ._typing import Array, IntPair


class Conv2dSaved(NamedTuple):
    """What :func:`xpnet.functional.conv2d_backward` needs from the forward pass.

    Parameters
    ----------
    cols : array
        The im2col matrix: (C_in*kH*kW, N*out_h*out_w) from the generic code; kernels may
        keep their own layout (the NumPy kernel: (N*out_h*out_w, kH*kW*C_in [+1])).
    weight : array
        The filters.
    x_shape : tuple of int
        The input's shape.
    stride, padding : (int, int)
        The forward's.
    has_bias : bool
        Whether the forward added a bias.
    made_by : str or None
        The kernel backend whose forward made the tuple; ``None``: the generic code.
    """

    cols: Array
    weight: Array
    x_shape: tuple[int, ...]
    stride: IntPair
    padding: IntPair
    has_bias: bool
    made_by: str | None = None


class Pool2dSaved(NamedTuple):
    """What the pooling backward passes need from the forward pass.

    Parameters
    ----------
    argmax : array or None
        (N, C, out_h, out_w) window offset of each maximum; ``None`` for average pooling.
    x_shape : tuple of int
        The input's shape.
    kernel, stride, padding : (int, int)
        The forward's window.
    made_by : str or None
        The kernel backend whose forward made the tuple; ``None``: the generic code.
    """

    argmax: Array | None  # (N, C, out_h, out_w) window offset of each max; None for avg
    x_shape: tuple[int, ...]
    kernel: IntPair
    stride: IntPair
    padding: IntPair
    made_by: str | None = None


class LinearSaved(NamedTuple):
    """What :func:`xpnet.functional.linear_backward` needs from the forward pass.

    Parameters
    ----------
    x : array
        The input.
    weight : array
        The weight.
    has_bias : bool
        Whether the forward added a bias.
    """

    x: Array
    weight: Array
    has_bias: bool


class CrossEntropySaved(NamedTuple):
    """What :func:`xpnet.functional.cross_entropy_backward` needs.

    Parameters
    ----------
    probs : array, shape (N, n_classes)
        ``softmax(logits)``.
    one_hot : array, shape (N, n_classes)
        The labels as one-hot rows.
    """

    probs: Array
    one_hot: Array


class MSESaved(NamedTuple):
    """What :func:`xpnet.functional.mse_loss_backward` needs.

    Parameters
    ----------
    diff : array
        ``prediction - target``.
    """

    diff: Array


class BatchNormSaved(NamedTuple):
    """What :func:`xpnet.functional.batch_norm_backward` needs, and the batch statistics
    the layer folds into its running estimates.

    Parameters
    ----------
    x_hat : array
        The normalised input.
    inv_std : array
        ``1 / sqrt(var + eps)``, broadcastable against x.
    weight : array or None
        The scale, broadcastable against x; ``None`` without one.
    axes : tuple of int
        The axes reduced over (all but the channel axis).
    batch_stats : bool
        Normalised by the batch's statistics (training) or the running ones.
    mean, var_unbiased : array or None
        (C,) batch mean and variance with Bessel's correction, when ``batch_stats``.
    made_by : str or None
        The kernel backend whose forward made the tuple; ``None``: the generic code.
    relu_out : array or None
        The output, when a ReLU followed in the same op.
    """

    x_hat: Array  # the normalised input
    inv_std: Array  # 1 / sqrt(var + eps), broadcastable against x
    weight: Array | None  # broadcastable against x; None without affine
    axes: tuple[int, ...]  # the axes reduced over (all but the channel axis)
    batch_stats: bool  # normalised by the batch's statistics (training) or running ones
    mean: Array | None  # (C,) batch mean, when batch_stats
    var_unbiased: Array | None  # (C,) batch variance with Bessel's correction, when batch_stats
    made_by: str | None = None
    relu_out: Array | None = None  # the output, when a ReLU followed in the same op
