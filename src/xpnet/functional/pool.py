"""Max and average pooling: the k_h*k_w strided windows stacked on one axis, then reduced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._saved import Pool2dSaved
from .._shapes import output_hw
from .._typing import Array, IntPair, Namespace
from .._validation import (
    check_floating,
    check_grad_shape,
    check_ndim,
    check_window_fits,
    namespace_of,
    pair,
)
from ..kernels import backward_for, kernel_for
from ._windows import col2im, im2col, pad2d, window_offsets


def check_pool_args(
    func: str,
    x: Array | None,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    *,
    xp: Namespace | None = None,
) -> tuple[IntPair, IntPair, IntPair]:
    """Validate a pooling op's window arguments and its input ``x`` of namespace ``xp``
    (a layer's constructor passes neither); return the (kernel, stride, padding) pairs.
    ``stride=None`` means the kernel size."""
    kernel = pair(kernel_size, "kernel_size", func, minimum=1)
    stride_hw = kernel if stride is None else pair(stride, "stride", func, minimum=1)
    padding_hw = pair(padding, "padding", func, minimum=0)
    if padding_hw[0] > kernel[0] // 2 or padding_hw[1] > kernel[1] // 2:
        raise ValueError(
            f"{func}: padding must be at most half the kernel size {kernel}; got {padding_hw}"
        )
    if x is not None and xp is not None:
        check_ndim(x, "x", func, 4, "(N, C, H, W)")
        check_floating(x, "x", func, xp=xp)
        check_window_fits(func, x.shape[-2:], kernel, padding_hw)
    return kernel, stride_hw, padding_hw


def _pool_forward(
    func: str,
    x: Array,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    reduce: Callable[[Array, Namespace], tuple[Array, Array | None]],
    fill: float,
) -> tuple[Array, Pool2dSaved]:
    """Validate, take ``func``'s kernel if one applies, else reduce the stacked windows.

    ``reduce(windows, xp)`` returns the output and the argmax (``None`` where the
    backward needs none).
    """
    xp = namespace_of(func, x=x)
    kernel, stride_hw, padding_hw = check_pool_args(func, x, kernel_size, stride, padding, xp=xp)
    fast = kernel_for(f"{func}_forward", x)
    if fast is not None:
        result = fast(x, kernel, stride=stride_hw, padding=padding_hw)
        if result is not None:
            return result
    n, c = x.shape[:2]
    out_hw = output_hw(tuple(x.shape[-2:]), kernel, stride_hw, padding_hw)
    windows = im2col(pad2d(x, padding_hw, fill, xp=xp), kernel, stride_hw, out_hw, xp=xp)
    out, argmax = reduce(windows, xp)  # windows: (N, C, kH*kW, out_h*out_w), one gather
    out = xp.reshape(out, (n, c, *out_hw))
    argmax = None if argmax is None else xp.reshape(argmax, (n, c, *out_hw))
    return out, Pool2dSaved(argmax, tuple(x.shape), kernel, stride_hw, padding_hw)


def _pool_backward(grad_out: Array, saved: Pool2dSaved, values: Array, *, xp: Namespace) -> Array:
    """Sum the window values ``values`` (N, C, kH*kW, out_h*out_w) back into the input."""
    out_hw = tuple(grad_out.shape[-2:])
    return col2im(values, saved.x_shape, saved.padding, saved.kernel, saved.stride, out_hw, xp=xp)


def _windowed(grad_out: Array, xp: Namespace) -> Array:
    """``grad_out`` (N, C, out_h, out_w) as (N, C, 1, out_h*out_w), to broadcast over the
    window offsets."""
    n, c, oh, ow = grad_out.shape
    return xp.reshape(grad_out, (n, c, 1, oh * ow))


def _check_pool_grad(func: str, grad_out: Array, saved: Pool2dSaved) -> None:
    n, c, h, w = saved.x_shape
    out_hw = output_hw((h, w), saved.kernel, saved.stride, saved.padding)
    check_grad_shape(func, grad_out, (n, c, *out_hw))


def _max_of_windows(windows: Array, xp: Namespace) -> tuple[Array, Array | None]:
    return xp.max(windows, axis=2), xp.argmax(windows, axis=2)  # first maximum, as PyTorch


def _mean_of_windows(windows: Array, xp: Namespace) -> tuple[Array, Array | None]:
    return xp.mean(windows, axis=2), None


def max_pool2d_forward(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> tuple[Array, Pool2dSaved]:
    """:func:`max_pool2d` that also returns what its backward pass needs.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Real floating input.
    kernel_size : int or (int, int)
        The window's size.
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, at most half the kernel size.

    Returns
    -------
    out : array, shape (N, C, out_h, out_w)
        As :func:`max_pool2d` returns.
    saved : Pool2dSaved
        What :func:`max_pool2d_backward` needs.
    """
    return _pool_forward(
        "max_pool2d", x, kernel_size, stride, padding, _max_of_windows, -float("inf")
    )


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
    """Gradient of :func:`max_pool2d` w.r.t. x: each output's gradient goes to its argmax.

    Parameters
    ----------
    grad_out : array, shape (N, C, out_h, out_w)
        d(loss)/d(output).
    saved : Pool2dSaved
        What :func:`max_pool2d_forward` returned.

    Returns
    -------
    array, shape (N, C, H, W)
        d(loss)/d(x).
    """
    _check_pool_grad("max_pool2d_backward", grad_out, saved)
    kernel = backward_for("max_pool2d_backward", saved)
    if kernel is not None:
        return kernel(grad_out, saved)
    xp = namespace_of("max_pool2d_backward", grad_out=grad_out)
    kk = saved.kernel[0] * saved.kernel[1]
    picked = _windowed(saved.argmax, xp) == window_offsets(kk, xp=xp, like=saved.argmax)
    return _pool_backward(grad_out, saved, xp.where(picked, _windowed(grad_out, xp), 0.0), xp=xp)


def avg_pool2d_forward(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> tuple[Array, Pool2dSaved]:
    """:func:`avg_pool2d` that also returns what its backward pass needs.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Real floating input.
    kernel_size : int or (int, int)
        The window's size.
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, at most half the kernel size.

    Returns
    -------
    out : array, shape (N, C, out_h, out_w)
        As :func:`avg_pool2d` returns.
    saved : Pool2dSaved
        What :func:`avg_pool2d_backward` needs.
    """
    return _pool_forward("avg_pool2d", x, kernel_size, stride, padding, _mean_of_windows, 0.0)


def avg_pool2d(
    x: Array,
    kernel_size: int | IntPair,
    *,
    stride: int | IntPair | None = None,
    padding: int | IntPair = 0,
) -> Array:
    """2-D average pooling; zero padding counts in the average (PyTorch's default).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Real floating input.
    kernel_size : int or (int, int)
        The window's size.
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, zeros counted in the average, at most half the kernel size.

    Returns
    -------
    array, shape (N, C, out_h, out_w)
        The windows' means.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import avg_pool2d
    >>> avg_pool2d(xp.ones((1, 1, 4, 4)), 2, padding=1)[0, 0, 0, ...]
    Array([0.25, 0.5 , 0.25], dtype=array_api_strict.float64)
    """
    return avg_pool2d_forward(x, kernel_size, stride=stride, padding=padding)[0]


def avg_pool2d_backward(grad_out: Array, saved: Pool2dSaved) -> Array:
    """Gradient of :func:`avg_pool2d` w.r.t. x: each window gets its output's gradient / k.

    Parameters
    ----------
    grad_out : array, shape (N, C, out_h, out_w)
        d(loss)/d(output).
    saved : Pool2dSaved
        What :func:`avg_pool2d_forward` returned.

    Returns
    -------
    array, shape (N, C, H, W)
        d(loss)/d(x).
    """
    _check_pool_grad("avg_pool2d_backward", grad_out, saved)
    kernel = backward_for("avg_pool2d_backward", saved)
    if kernel is not None:
        return kernel(grad_out, saved)
    xp = namespace_of("avg_pool2d_backward", grad_out=grad_out)
    kk = saved.kernel[0] * saved.kernel[1]
    n, c, oh, ow = grad_out.shape
    share = xp.broadcast_to(_windowed(grad_out / kk, xp), (n, c, kk, oh * ow))
    return _pool_backward(grad_out, saved, share, xp=xp)


def adaptive_avg_pool2d_forward(x: Array, output_size: int | IntPair) -> tuple[Array, Pool2dSaved]:
    """:func:`adaptive_avg_pool2d` that also returns what its backward needs (that of
    :func:`avg_pool2d`).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Real floating input.
    output_size : int or (int, int)
        The output's (out_h, out_w); each must divide the input's side.

    Returns
    -------
    out : array, shape (N, C, out_h, out_w)
        As :func:`adaptive_avg_pool2d` returns.
    saved : Pool2dSaved
        What :func:`avg_pool2d_backward` needs.
    """
    xp = namespace_of("adaptive_avg_pool2d", x=x)
    check_ndim(x, "x", "adaptive_avg_pool2d", 4, "(N, C, H, W)")
    check_floating(x, "x", "adaptive_avg_pool2d", xp=xp)
    out_h, out_w = pair(output_size, "output_size", "adaptive_avg_pool2d", minimum=1)
    height, width = x.shape[-2:]
    if height % out_h or width % out_w:
        raise ValueError(
            f"adaptive_avg_pool2d: the input's (H, W) = ({height}, {width}) must be multiples "
            f"of output_size ({out_h}, {out_w}) (equal windows; other sizes are not supported)"
        )
    return avg_pool2d_forward(x, (height // out_h, width // out_w))


def adaptive_avg_pool2d(x: Array, output_size: int | IntPair) -> Array:
    """Average pooling to an (out_h, out_w) output: ``output_size=1`` is global average
    pooling. The input's sides must be multiples of the output's (equal windows).

    Parameters
    ----------
    x : array, shape (N, C, H, W)
        Real floating input.
    output_size : int or (int, int)
        The output's (out_h, out_w); each must divide the input's side.

    Returns
    -------
    array, shape (N, C, out_h, out_w)
        The windows' means.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import adaptive_avg_pool2d
    >>> adaptive_avg_pool2d(xp.reshape(xp.arange(8.0), (1, 2, 2, 2)), 1)[..., 0, 0]
    Array([[1.5, 5.5]], dtype=array_api_strict.float64)
    """
    return adaptive_avg_pool2d_forward(x, output_size)[0]
