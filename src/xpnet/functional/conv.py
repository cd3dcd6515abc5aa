"""2-D convolution (cross-correlation, like PyTorch) by im2col and one matrix product."""

from __future__ import annotations

from typing import Any

from .._saved import Conv2dSaved
from .._shapes import output_hw
from .._typing import Array, IntPair, Namespace
from .._validation import (
    check_grad_shape,
    check_ndim,
    check_weight_and_bias,
    check_window_fits,
    namespace_of,
    pair,
)
from ..kernels import backward_for, kernel_for
from ._windows import col2im, im2col, pad2d


def check_conv2d_args(
    x: Array, weight: Array, bias: Array | None, stride: Any, padding: Any
) -> tuple[Namespace, IntPair, IntPair]:
    """Validate conv2d's arguments; return their namespace and the (stride, padding) pairs."""
    xp = namespace_of("conv2d", x=x, weight=weight, bias=bias)
    check_ndim(x, "x", "conv2d", 4, "(N, C_in, H, W)")
    check_ndim(weight, "weight", "conv2d", 4, "(C_out, C_in, kH, kW)")
    check_weight_and_bias("conv2d", x, weight, bias, xp=xp)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: x has {x.shape[1]} channels (shape {tuple(x.shape)}) but weight expects "
            f"C_in={weight.shape[1]} (shape {tuple(weight.shape)})"
        )
    stride_hw = pair(stride, "stride", "conv2d", minimum=1)
    padding_hw = pair(padding, "padding", "conv2d", minimum=0)
    check_window_fits("conv2d", x.shape[-2:], tuple(weight.shape[-2:]), padding_hw)
    return xp, stride_hw, padding_hw


def conv2d_forward(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    stride: int | IntPair = 1,
    padding: int | IntPair = 0,
) -> tuple[Array, Conv2dSaved]:
    """:func:`conv2d` that also returns what its backward pass needs.

    Parameters
    ----------
    x : array, shape (N, C_in, H, W)
        Real floating input batch.
    weight : array, shape (C_out, C_in, kH, kW)
        Filters, in PyTorch's layout; same backend and dtype as ``x``.
    bias : array, shape (C_out,), optional
        Added to each output channel.
    stride, padding : int or (int, int)
        Window step (>= 1) and zero padding on each side (>= 0).

    Returns
    -------
    out : array, shape (N, C_out, out_h, out_w)
        As :func:`conv2d` returns.
    saved : Conv2dSaved
        What :func:`conv2d_backward` needs.
    """
    xp, stride_hw, padding_hw = check_conv2d_args(x, weight, bias, stride, padding)
    kernel = kernel_for("conv2d_forward", x, weight, bias)
    if kernel is not None:
        result = kernel(x, weight, bias, stride=stride_hw, padding=padding_hw)
        if result is not None:
            return result
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    oh, ow = output_hw((h, w), (kh, kw), stride_hw, padding_hw)
    # Every window of every image in ONE gather: cols (N, C_in*kH*kW, oh*ow); then the
    # whole layer is ONE batched product (C_out, C_in*kH*kW) @ cols, already in NCHW order.
    cols = im2col(pad2d(x, padding_hw, xp=xp), (kh, kw), stride_hw, (oh, ow), xp=xp)
    cols = xp.reshape(cols, (n, c_in * kh * kw, oh * ow))
    out = xp.reshape(weight, (c_out, c_in * kh * kw)) @ cols  # (N, C_out, oh*ow)
    if bias is not None:
        out = out + bias[:, None]
    out = xp.reshape(out, (n, c_out, oh, ow))
    saved = Conv2dSaved(cols, weight, tuple(x.shape), stride_hw, padding_hw, bias is not None)
    return out, saved


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    stride: int | IntPair = 1,
    padding: int | IntPair = 0,
) -> Array:
    """2-D cross-correlation of a batch of images with a bank of filters.

    Parameters
    ----------
    x : array, shape (N, C_in, H, W)
        Real floating input batch.
    weight : array, shape (C_out, C_in, kH, kW)
        Filters, in PyTorch's layout; same backend and dtype as ``x``.
    bias : array, shape (C_out,), optional
    stride, padding : int or (int, int)
        Window step (>= 1) and zero padding on each side (>= 0).

    Returns
    -------
    array, shape (N, C_out, out_h, out_w)
        ``out_h = (H + 2*padding - kH) // stride + 1`` (likewise ``out_w``), same backend,
        dtype and device as ``x``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import conv2d
    >>> x = xp.ones((1, 1, 4, 4))
    >>> conv2d(x, xp.ones((2, 1, 3, 3)), padding=1).shape
    (1, 2, 4, 4)
    """
    return conv2d_forward(x, weight, bias, stride=stride, padding=padding)[0]


def conv2d_backward(
    grad_out: Array, saved: Conv2dSaved, *, input_grad: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`conv2d` w.r.t. (x, weight, bias) given d(loss)/d(output).

    ``input_grad=False`` skips d(loss)/d(x) (returned as ``None``): a network's first layer
    needs only its parameter gradients, and col2im is the costliest part of the backward.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    saved : Conv2dSaved
        What :func:`conv2d_forward` returned.
    input_grad : bool
        Compute d(loss)/d(x); ``False`` returns ``None`` in its place.

    Returns
    -------
    grad_x : array or None
        d(loss)/d(x), the input's shape.
    grad_weight : array
        d(loss)/d(weight).
    grad_bias : array or None
        d(loss)/d(bias); ``None`` without a bias.
    """
    xp = namespace_of("conv2d_backward", grad_out=grad_out, weight=saved.weight)
    n, _, h, w = saved.x_shape
    out_hw = output_hw((h, w), tuple(saved.weight.shape[-2:]), saved.stride, saved.padding)
    check_grad_shape("conv2d_backward", grad_out, (n, saved.weight.shape[0], *out_hw))
    kernel = backward_for("conv2d_backward", saved)
    if kernel is not None:
        return kernel(grad_out, saved, input_grad=input_grad)
    n, c_in, h, w = saved.x_shape
    c_out, _, kh, kw = saved.weight.shape
    oh, ow = grad_out.shape[-2:]
    grad_3d = xp.reshape(grad_out, (n, c_out, oh * ow))
    # one contraction over the batch and the output positions: (C_out, C_in*kH*kW)
    grad_weight = xp.tensordot(grad_3d, saved.cols, axes=([0, 2], [0, 2]))
    grad_weight = xp.reshape(grad_weight, saved.weight.shape)
    grad_bias = xp.sum(grad_3d, axis=(0, 2)) if saved.has_bias else None
    if not input_grad:
        return None, grad_weight, grad_bias
    weight_2d = xp.reshape(saved.weight, (c_out, c_in * kh * kw))
    grad_cols = xp.matrix_transpose(weight_2d) @ grad_3d  # (N, C_in*kH*kW, oh*ow)
    grad_cols = xp.reshape(grad_cols, (n, c_in, kh * kw, oh * ow))
    grad_x = col2im(
        grad_cols, (n, c_in, h, w), saved.padding, (kh, kw), saved.stride, (oh, ow), xp=xp
    )
    return grad_x, grad_weight, grad_bias
