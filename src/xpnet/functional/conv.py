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
from ._windows import col2im, crop2d, im2col, pad2d


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
    """:func:`conv2d` that also returns what its backward pass needs."""
    xp, stride_hw, padding_hw = check_conv2d_args(x, weight, bias, stride, padding)
    kernel = kernel_for("conv2d_forward", x, weight, bias)
    if kernel is not None:
        result = kernel(x, weight, bias, stride=stride_hw, padding=padding_hw)
        if result is not None:
            return result
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    oh, ow = output_hw((h, w), (kh, kw), stride_hw, padding_hw)
    # Channels first, batch second: the columns of all N images form ONE matrix, so the
    # whole layer is a single (C_out, C_in*kH*kW) @ (C_in*kH*kW, N*oh*ow) product.
    x_cn = pad2d(xp.permute_dims(x, (1, 0, 2, 3)), padding_hw, xp=xp)
    cols = im2col(x_cn, (kh, kw), stride_hw, (oh, ow), axis=1, xp=xp)  # (C_in, kH*kW, N, oh, ow)
    cols = xp.reshape(cols, (c_in * kh * kw, n * oh * ow))
    out = xp.reshape(weight, (c_out, c_in * kh * kw)) @ cols
    if bias is not None:
        out = out + bias[:, None]
    out = xp.permute_dims(xp.reshape(out, (c_out, n, oh, ow)), (1, 0, 2, 3))
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
    grad_2d = xp.reshape(xp.permute_dims(grad_out, (1, 0, 2, 3)), (c_out, n * oh * ow))
    grad_weight = xp.reshape(grad_2d @ xp.matrix_transpose(saved.cols), saved.weight.shape)
    grad_bias = xp.sum(grad_2d, axis=1) if saved.has_bias else None
    if not input_grad:
        return None, grad_weight, grad_bias
    weight_2d = xp.reshape(saved.weight, (c_out, c_in * kh * kw))
    grad_cols = xp.reshape(xp.matrix_transpose(weight_2d) @ grad_2d, (c_in, kh * kw, n, oh, ow))
    ph, pw = saved.padding
    grad_x_cn = col2im(
        lambda k: grad_cols[:, k, ...],
        grad_out,
        (c_in, n, h + 2 * ph, w + 2 * pw),
        (kh, kw),
        saved.stride,
        (oh, ow),
        xp=xp,
    )
    grad_x = xp.permute_dims(crop2d(grad_x_cn, saved.padding), (1, 0, 2, 3))
    return grad_x, grad_weight, grad_bias
