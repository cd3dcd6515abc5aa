"""Max and average pooling: the k_h*k_w strided windows stacked on one axis, then reduced."""

from __future__ import annotations

from typing import Any, NamedTuple

from .._backend import fast_kernels
from .._validation import IntPair, check_floating, check_ndim, namespace_of, pair
from ._windows import col2im, crop2d, im2col, output_size, pad2d
from .conv import check_window_fits

Array = Any


class Pool2dSaved(NamedTuple):
    """What the pooling backward passes need from the forward pass."""

    argmax: Array | None  # (N, C, out_h, out_w) window offset of each max; None for avg
    x_shape: tuple[int, ...]
    kernel: IntPair
    stride: IntPair
    padding: IntPair


def _check_pool_args(
    func: str, x: Array, kernel_size: Any, stride: Any, padding: Any
) -> tuple[IntPair, IntPair, IntPair]:
    xp = namespace_of(func, x=x)
    check_ndim(x, "x", func, 4, "(N, C, H, W)")
    check_floating(xp, x, "x", func)
    kernel = pair(kernel_size, "kernel_size", func, minimum=1)
    stride_hw = kernel if stride is None else pair(stride, "stride", func, minimum=1)
    padding_hw = pair(padding, "padding", func, minimum=0)
    if padding_hw[0] > kernel[0] // 2 or padding_hw[1] > kernel[1] // 2:
        raise ValueError(
            f"{func}: padding must be at most half the kernel size {kernel}; got {padding_hw}"
        )
    check_window_fits(func, x.shape[-2:], kernel, padding_hw)
    return kernel, stride_hw, padding_hw


def _windows(x: Array, kernel: IntPair, stride: IntPair, padding: IntPair, fill: float) -> Array:
    """(kH*kW, N, C, out_h, out_w) stack of the pooling windows of ``x``."""
    out_hw = tuple(
        output_size(s, k, st, p) for s, k, st, p in zip(x.shape[-2:], kernel, stride, padding)
    )
    return im2col(pad2d(x, padding, fill), kernel, stride, out_hw, axis=0)


def max_pool2d_forward(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> tuple[Array, Pool2dSaved]:
    """:func:`max_pool2d` that also returns what its backward pass needs."""
    kernel, stride_hw, padding_hw = _check_pool_args("max_pool2d", x, kernel_size, stride, padding)
    fast = fast_kernels(x)
    if fast is not None and fast.reshape_pooling(kernel, stride_hw, padding_hw):
        result = fast.max_pool2d_forward(x, kernel)
        if result is not None:
            return result
    xp = namespace_of("max_pool2d", x=x)
    windows = _windows(x, kernel, stride_hw, padding_hw, -float("inf"))
    argmax = xp.argmax(windows, axis=0)  # first maximum on ties, as PyTorch
    out = xp.max(windows, axis=0)
    return out, Pool2dSaved(argmax, tuple(x.shape), kernel, stride_hw, padding_hw)


def max_pool2d(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> Array:
    """2-D max pooling over (N, C, H, W) input.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit -inf padding on each side, at most half the kernel size.

    Returns
    -------
    array, shape (N, C, out_h, out_w)

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import max_pool2d
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> max_pool2d(x, 2)[0, 0, ...]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=array_api_strict.float64)
    """
    return max_pool2d_forward(x, kernel_size, stride=stride, padding=padding)[0]


def max_pool2d_backward(grad_out: Array, saved: Pool2dSaved) -> Array:
    """Gradient of :func:`max_pool2d` w.r.t. x: each output's gradient goes to its argmax."""
    xp = namespace_of("max_pool2d_backward", grad_out=grad_out)
    fast = fast_kernels(grad_out)
    if fast is not None and fast.reshape_pooling(saved.kernel, saved.stride, saved.padding):
        return fast.max_pool2d_backward(grad_out, saved)
    zero = xp.zeros_like(grad_out)
    return _scatter_back(lambda k: xp.where(saved.argmax == k, grad_out, zero), grad_out, saved)


def avg_pool2d_forward(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> tuple[Array, Pool2dSaved]:
    """:func:`avg_pool2d` that also returns what its backward pass needs."""
    kernel, stride_hw, padding_hw = _check_pool_args("avg_pool2d", x, kernel_size, stride, padding)
    fast = fast_kernels(x)
    if fast is not None and fast.reshape_pooling(kernel, stride_hw, padding_hw):
        return fast.avg_pool2d_forward(x, kernel)
    xp = namespace_of("avg_pool2d", x=x)
    out = xp.mean(_windows(x, kernel, stride_hw, padding_hw, 0.0), axis=0)
    return out, Pool2dSaved(None, tuple(x.shape), kernel, stride_hw, padding_hw)


def avg_pool2d(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> Array:
    """2-D average pooling; zero padding counts in the average (PyTorch's default).

    Parameters and result as :func:`max_pool2d`.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import avg_pool2d
    >>> avg_pool2d(xp.ones((1, 1, 4, 4)), 2, padding=1)[0, 0, 0, ...]
    Array([0.25, 0.5 , 0.25], dtype=array_api_strict.float64)
    """
    return avg_pool2d_forward(x, kernel_size, stride=stride, padding=padding)[0]


def avg_pool2d_backward(grad_out: Array, saved: Pool2dSaved) -> Array:
    """Gradient of :func:`avg_pool2d` w.r.t. x: each window gets its output's gradient / k."""
    fast = fast_kernels(grad_out)
    if fast is not None and fast.reshape_pooling(saved.kernel, saved.stride, saved.padding):
        return fast.avg_pool2d_backward(grad_out, saved)
    share = grad_out / (saved.kernel[0] * saved.kernel[1])
    return _scatter_back(lambda k: share, grad_out, saved)


def _scatter_back(contribution: Any, grad_out: Array, saved: Pool2dSaved) -> Array:
    n, c, h, w = saved.x_shape
    ph, pw = saved.padding
    padded = col2im(
        contribution,
        grad_out,
        (n, c, h + 2 * ph, w + 2 * pw),
        saved.kernel,
        saved.stride,
        tuple(grad_out.shape[-2:]),
    )
    return crop2d(padded, saved.padding)
