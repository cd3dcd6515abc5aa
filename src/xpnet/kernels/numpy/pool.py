"""Max and average pooling on NumPy, with stride == kernel and no padding: the windows are a
reshape (a view), not a stack of slices."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..._saved import Pool2dSaved
from ..._typing import IntPair
from .. import _compiled
from .._registry import register
from ._layout import BACKEND, as_nchw, channels_last, is_channels_last, same_layout, zero_where


def pool_windows(x: np.ndarray, kernel: IntPair, *, writeable: bool = False) -> np.ndarray:
    """(N, C, out_h, kH, out_w, kW) view of NCHW ``x`` (any strides) with stride == kernel."""
    kh, kw = kernel
    n, c, h, w = x.shape
    sn, sc, sy, sx = x.strides
    return as_strided(
        x, (n, c, h // kh, kh, w // kw, kw), (sn, sc, kh * sy, sy, kw * sx, sx), writeable=writeable
    )


def reshape_pooling(kernel: IntPair, stride: IntPair, padding: IntPair) -> bool:
    """Whether the reshape kernels below apply: stride == kernel and no padding."""
    return stride == kernel and padding == (0, 0)


@register(BACKEND, "max_pool2d_forward")
def max_pool2d_forward(
    x: np.ndarray, kernel: IntPair, *, stride: IntPair, padding: IntPair
) -> tuple[np.ndarray, Pool2dSaved] | None:
    """Max pooling over non-overlapping windows; ``None`` (use the generic path) for
    overlapping or padded windows, and on NaN.

    The argmax is the first maximum in row-major window order, as the generic path and
    PyTorch: the number of leading window entries that are not the maximum.
    """
    if not reshape_pooling(kernel, stride, padding):
        return None
    kh, kw = kernel
    if _compiled.available() and is_channels_last(x):  # one pass
        n, c, h, w = x.shape
        out_nhwc = np.empty((n, h // kh, w // kw, c), dtype=x.dtype)
        argmax_nhwc = np.empty(out_nhwc.shape, dtype=np.int32)  # vectorises beside float32
        nan_in = np.empty(n, dtype=np.bool_)
        with _compiled.loop_threads(x.size) as loops:
            loops.max_pool_forward(
                np.permute_dims(x, (0, 2, 3, 1)), kh, kw, out_nhwc, argmax_nhwc, nan_in
            )
        if nan_in.any():
            return None  # a NaN: the generic path
        saved = Pool2dSaved(as_nchw(argmax_nhwc), tuple(x.shape), kernel, kernel, (0, 0), BACKEND)
        return as_nchw(out_nhwc), saved
    windows = pool_windows(x, kernel)
    offsets = [windows[:, :, :, i, :, j] for i in range(kh) for j in range(kw)]
    out = np.maximum(offsets[0], offsets[1]) if len(offsets) > 1 else offsets[0].copy()
    for offset in offsets[2:]:
        np.maximum(out, offset, out=out)
    if np.isnan(np.sum(out)):  # argmax of a window with NaN: leave it to the generic path
        return None
    index_type = np.uint8 if kh * kw <= 256 else np.int64
    argmax = np.zeros_like(out, dtype=index_type)  # laid out like x (channels-last or not)
    before = np.ones_like(out, dtype=bool)  # no maximum seen so far in the window
    for offset in offsets[:-1]:
        np.logical_and(before, offset != out, out=before)
        argmax += before
    return out, Pool2dSaved(argmax, tuple(x.shape), kernel, kernel, (0, 0), BACKEND)


@register(BACKEND, "max_pool2d_backward")
def max_pool2d_backward(grad_out: np.ndarray, saved: Pool2dSaved) -> np.ndarray:
    """Each output's gradient to its window's argmax, written channels-last.

    One pass per window offset writes that offset's pixel of every window: the output's
    gradient where the argmax is that offset, else 0.
    """
    kh, kw = saved.kernel
    argmax = saved.argmax
    assert argmax is not None  # max pooling always saves it
    if _compiled.available() and is_channels_last(argmax):  # one pass
        n, c, h, w = saved.x_shape
        grad_x = np.empty((n, h, w, c), dtype=grad_out.dtype)
        with _compiled.loop_threads(grad_x.size) as loops:
            loops.max_pool_backward(
                channels_last(grad_out),  # a copy after a Flatten: 5x faster than strided
                np.permute_dims(argmax, (0, 2, 3, 1)),
                kh,
                kw,
                grad_x,
            )
        return as_nchw(grad_x)
    grad_out = same_layout(grad_out, argmax)  # e.g. NCHW from a Flatten's backward
    grad_x = pool_output_like(saved.x_shape, saved.kernel, grad_out)  # the input's layout
    windows = pool_windows(grad_x, saved.kernel, writeable=True)
    for k in range(kh * kw):
        zero_where(np.not_equal(argmax, k), grad_out, out=windows[:, :, :, k // kw, :, k % kw])
    return grad_x


def pool_output_like(x_shape: tuple[int, ...], kernel: IntPair, like: np.ndarray) -> np.ndarray:
    """An empty gradient for the pooled input, in the memory layout of ``like`` (zeros where
    floor mode dropped edge pixels, which get no gradient)."""
    n, c, h, w = x_shape
    kh, kw = kernel
    allocate = np.zeros if (h % kh, w % kw) != (0, 0) else np.empty
    if is_channels_last(like):
        return as_nchw(allocate((n, h, w, c), dtype=like.dtype))
    return allocate((n, c, h, w), dtype=like.dtype)


@register(BACKEND, "avg_pool2d_forward")
def avg_pool2d_forward(
    x: np.ndarray, kernel: IntPair, *, stride: IntPair, padding: IntPair
) -> tuple[np.ndarray, Pool2dSaved] | None:
    """Average pooling over non-overlapping windows: the offsets summed in row-major order,
    then divided by their number (the generic ``mean`` may sum in another order);
    ``None`` for overlapping or padded windows."""
    if not reshape_pooling(kernel, stride, padding):
        return None
    kh, kw = kernel
    windows = pool_windows(x, kernel)
    offsets = [windows[:, :, :, i, :, j] for i in range(kh) for j in range(kw)]
    total = offsets[0].copy() if len(offsets) == 1 else np.add(offsets[0], offsets[1])
    for offset in offsets[2:]:
        np.add(total, offset, out=total)
    total /= kh * kw
    return total, Pool2dSaved(None, tuple(x.shape), kernel, kernel, (0, 0), BACKEND)


@register(BACKEND, "avg_pool2d_backward")
def avg_pool2d_backward(grad_out: np.ndarray, saved: Pool2dSaved) -> np.ndarray:
    """Each window's pixels get its output's gradient / (kh*kw), one pass per offset."""
    kh, kw = saved.kernel
    share = grad_out / (kh * kw)
    grad_x = pool_output_like(saved.x_shape, saved.kernel, share)
    windows = pool_windows(grad_x, saved.kernel, writeable=True)
    for k in range(kh * kw):
        windows[:, :, :, k // kw, :, k % kw] = share
    return grad_x
