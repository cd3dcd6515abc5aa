"""NumPy kernels for the hot layers, in channels-last memory.

The generic code in :mod:`xpnet.functional` is the definition of every op and runs on any
backend. On NumPy three things make it slow, and this module avoids them in conv2d, max and
average pooling (stride == kernel, no padding), sigmoid and ReLU's backward:

- im2col of a channels-first (N, C, H, W) image copies rows of only ``out_w`` floats (8 for
  the default model's second conv layer); here the columns are cut from channels-last
  memory, where one window row is ``kernel_w * C_in`` contiguous floats, in ONE copy from
  ``sliding_window_view`` (or, when ``C_in == 1``, as one slice per kernel offset, whose
  rows are ``out_w`` long);
- ``np.where`` on a random mask mispredicts a branch per element (4.8 ms for 1.2 million
  floats here, against 0.33 ms for the bitwise AND used instead);
- pooling through a stack of window slices copies the input once more; here windows of
  stride == kernel are a reshape (a view).

With the optional compiled loops (``xpnet[numba]``, :mod:`xpnet.kernels.numba_loops`),
3x3 stride-1 convolutions take Winograd's F(2x2, 3x3) (:mod:`xpnet.kernels.winograd`: 2.25x
fewer multiplies), and max pooling and ReLU's backward run as one pass each instead of
several NumPy passes.

Results are NCHW-*shaped* arrays whose memory is channels-last (N, H, W, C), as PyTorch's
``channels_last`` format: the next layer reads them without a copy. Each kernel is
registered for the op it replaces (``@register("numpy", "conv2d_forward")``), handed out
by :func:`xpnet.kernels.kernel_for` for plain NumPy arrays only, and tested equal to the
generic op by the registry-driven test (``tests/test_kernels.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from .._saved import BatchNormSaved, Conv2dSaved, Pool2dSaved
from .._shapes import output_hw
from .._typing import IntPair
from . import _compiled, winograd
from ._registry import register

BACKEND = "numpy"

COL2IM_CHUNK_BYTES = 2**21
"""col2im works through the batch in chunks whose column gradients take about this many
bytes, so each chunk's image and columns stay in the CPU cache (measured: 2 MiB best)."""


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def channels_last(x: np.ndarray) -> np.ndarray:
    """The (N, H, W, C) view of NCHW ``x``, copied only if its memory is not channels-last."""
    return np.ascontiguousarray(np.permute_dims(x, (0, 2, 3, 1)))


def is_channels_last(x: np.ndarray) -> bool:
    """Whether NCHW-shaped ``x`` has channels-last memory (channels the innermost axis)."""
    return x.shape[1] == 1 or x.strides[1] == min(x.strides)


def as_nchw(x_nhwc: np.ndarray) -> np.ndarray:
    """The NCHW-shaped view of channels-last memory."""
    return np.permute_dims(x_nhwc, (0, 3, 1, 2))


def same_layout(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``x``, copied into the memory layout of ``like`` (same shape) if it differs.

    Elementwise passes over two arrays of different layouts run in short inner loops.
    """
    if (
        np.argsort(x.strides, kind="stable").tolist()
        == np.argsort(like.strides, kind="stable").tolist()
    ):
        return x
    copy = np.empty_like(like, dtype=x.dtype)  # empty_like keeps like's layout
    copy[...] = x
    return copy


def zero_where(drop: np.ndarray, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.where(drop, 0, values)`` with no branch per element, bit-exact (NaN, inf kept).

    ``np.where`` on a random mask mispredicts a branch per element (about 15x slower here);
    instead ``drop - 1`` as unsigned ints is all ones where ``values`` stay, and a bitwise
    AND applies it. ``out``, if given, receives the result.
    """
    uint = np.dtype(f"u{values.dtype.itemsize}")
    bits = np.subtract(drop, 1, dtype=uint, casting="unsafe")  # False -> all ones, True -> 0
    target = bits if out is None else out.view(uint)
    return np.bitwise_and(bits, values.view(uint), out=target).view(values.dtype)


def select(condition: np.ndarray, if_true: np.ndarray, if_false: np.ndarray) -> np.ndarray:
    """``np.where(condition, if_true, if_false)`` for two float arrays of one dtype, with
    no branch per element and bit-exact: ``(a & mask) | (b & ~mask)`` on their bits."""
    uint = np.dtype(f"u{if_true.dtype.itemsize}")
    mask = np.subtract(condition, 1, dtype=uint, casting="unsafe")  # all ones where False
    chosen = np.bitwise_and(mask, if_false.view(uint))
    np.invert(mask, out=mask)  # all ones where True
    np.bitwise_and(mask, if_true.view(uint), out=mask)
    return np.bitwise_or(mask, chosen, out=mask).view(if_true.dtype)


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------


def im2col_rows(
    x_nhwc: np.ndarray,
    kernel: IntPair,
    stride: IntPair,
    out_hw: IntPair,
    *,
    ones_column: bool = False,
) -> np.ndarray:
    """The (N*out_h*out_w, kH*kW*C) column matrix of channels-last ``x_nhwc`` (padded).

    Row ``(n, oy, ox)`` holds the window at that output position, ordered (ky, kx, c), and
    with ``ones_column`` a final 1 (so a bias rides along in the matrix products). The
    matrix is C-ordered (one copy whose rows are ``kW*C`` floats long) unless a window row
    is shorter than an output row (``C == 1``): then it is F-ordered, one copy per kernel
    offset of ``out_w`` floats each.
    """
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    n, _, _, c = x_nhwc.shape
    k, m = kh * kw * c, n * oh * ow
    windows = sliding_window_view(x_nhwc, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    windows = windows[:, :oh, :ow]  # (N, oh, ow, C, kh, kw)
    if c == 1 and sw == 1 and ow > kw:  # offset-major: (K, M) in memory
        cols = np.empty((k + ones_column, m), dtype=x_nhwc.dtype)
        target = np.reshape(cols[:k], (kh, kw, c, n, oh, ow), copy=False)
        np.copyto(target, np.permute_dims(windows, (4, 5, 3, 0, 1, 2)))
        cols[k:] = 1
        return cols.T
    cols = np.empty((m, k + ones_column), dtype=x_nhwc.dtype)
    target = np.reshape(cols, (n, oh, ow, k + ones_column), copy=False)[..., :k]
    target = np.reshape(target, (n, oh, ow, kh, kw, c), copy=False)
    np.copyto(target, np.permute_dims(windows, (0, 1, 2, 4, 5, 3)))
    cols[:, k:] = 1
    return cols


def pad_channels_last(x_nhwc: np.ndarray, padding: IntPair) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x_nhwc
    n, h, w, c = x_nhwc.shape
    padded = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x_nhwc.dtype)
    padded[:, ph : ph + h, pw : pw + w] = x_nhwc
    return padded


@register(BACKEND, "conv2d_forward")
def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: IntPair,
    padding: IntPair,
) -> tuple[np.ndarray, Conv2dSaved]:
    """conv2d as ONE (N*L, K) @ (K, C_out) product on channels-last columns.

    The bias is one more row of the weight matrix against a column of ones, so the product
    adds it and the weight-gradient product sums its gradient, with no pass of their own.
    """
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    has_bias = bias is not None
    if winograd.applies((kh, kw), stride, c_in):
        out, tiles = winograd.conv2d(x, weight, bias, padding)
        saved = Conv2dSaved(tiles, weight, tuple(x.shape), stride, padding, has_bias, BACKEND)
        return as_nchw(out), saved
    oh, ow = output_hw((h, w), (kh, kw), stride, padding)
    x_nhwc = pad_channels_last(channels_last(x), padding)
    cols = im2col_rows(x_nhwc, (kh, kw), stride, (oh, ow), ones_column=has_bias)
    weight_rows = np.permute_dims(weight, (0, 2, 3, 1)).reshape(c_out, kh * kw * c_in)
    if bias is not None:
        weight_rows = np.concatenate([weight_rows, bias[:, None]], axis=1)
    out = cols @ weight_rows.T  # (N*oh*ow, C_out): channels-last memory
    saved = Conv2dSaved(cols, weight, tuple(x.shape), stride, padding, has_bias, BACKEND)
    return as_nchw(out.reshape(n, oh, ow, c_out)), saved


@register(BACKEND, "conv2d_backward")
def conv2d_backward(
    grad_out: np.ndarray, saved: Conv2dSaved, *, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward`; ``input_grad=False`` skips d(loss)/d(x)."""
    n, c_in, h, w = saved.x_shape
    c_out, _, kh, kw = saved.weight.shape
    oh, ow = grad_out.shape[-2:]
    if isinstance(saved.cols, winograd.WinogradTiles):
        grad_x, grad_weight, grad_bias = winograd.conv2d_backward(
            channels_last(grad_out),
            saved.cols,
            (h, w),
            saved.padding,
            input_grad=input_grad,
            bias_grad=saved.has_bias,
        )
        return (None if grad_x is None else as_nchw(grad_x)), grad_weight, grad_bias
    k = kh * kw * c_in
    grad_rows = channels_last(grad_out).reshape(n * oh * ow, c_out)
    # (C_out, K [+ 1 for the bias]); this orientation of the product is the faster one
    # (measured 1.1-1.8x with OpenBLAS's Haswell and SkylakeX kernels)
    grad_params = (saved.cols.T @ grad_rows).T
    grad_bias = np.ascontiguousarray(grad_params[:, k]) if saved.has_bias else None
    grad_weight = grad_params[:, :k].reshape(c_out, kh, kw, c_in)
    grad_weight = np.ascontiguousarray(np.permute_dims(grad_weight, (0, 3, 1, 2)))
    if not input_grad:
        return None, grad_weight, grad_bias
    ph, pw = saved.padding
    grad_x = col2im_rows(
        grad_rows.reshape(n, oh * ow, c_out),
        saved.weight,
        (h + 2 * ph, w + 2 * pw),
        saved.stride,
        (oh, ow),
    )
    return as_nchw(grad_x[:, ph : ph + h, pw : pw + w]), grad_weight, grad_bias


def col2im_rows(
    grad_rows: np.ndarray,
    weight: np.ndarray,
    padded_hw: IntPair,
    stride: IntPair,
    out_hw: IntPair,
) -> np.ndarray:
    """d(loss)/d(padded input), channels-last, from the (N, L, C_out) output gradient.

    Two ways to the same sum. :func:`col2im_banded` for column stride 1, kernels at least 5
    wide and 2 to 16 input channels, where it measured faster (batch 128: 16->32 channels
    5x5 at 12x12 3.85 -> 3.41 ms with OpenBLAS's Haswell kernels, 3.90 -> 2.67 ms with
    SkylakeX; 6->16 5x5 at 14x14 2.34 -> 1.08 ms); it lost on 3x3 kernels (64->64 at 32x32,
    batch 32: 16.9 -> 26.2 ms), whose bands multiply twice the work, and tied at 32 input
    channels 5x5. Otherwise the kernel offsets one by one: each offset's column gradient
    ``grad_rows @ weight[:, :, ky, kx]`` ((L, C_in) per image; all offsets from one
    ``matmul`` call) is added to the image shifted by that offset, in rows of
    ``out_w * C_in`` floats. Both work through the batch in chunks that stay in cache.
    """
    n, _, c_out = grad_rows.shape
    _, c_in, kh, kw = weight.shape
    (sh, sw), (oh, ow) = stride, out_hw
    if sw == 1 and kw >= 5 and 1 < c_in <= 16:  # where the bands measured faster
        return col2im_banded(grad_rows, weight, padded_hw, sh, out_hw)
    # (kh*kw, C_out, C_in): the weight matrix of each kernel offset
    weight_per_offset = np.permute_dims(weight, (2, 3, 0, 1)).reshape(kh * kw, c_out, c_in)
    image = np.zeros((n, *padded_hw, c_in), dtype=grad_rows.dtype)
    for first, last in batch_chunks(n, kh * kw * oh * ow * c_in * grad_rows.itemsize):
        rows = grad_rows[first:last].reshape((last - first) * oh * ow, c_out)
        if c_in == 1:  # one (kh*kw, C_out) @ (C_out, rows) product
            grad_cols = weight_per_offset[:, :, 0] @ rows.T
        else:  # kh*kw products (rows, C_out) @ (C_out, C_in)
            grad_cols = np.matmul(rows, weight_per_offset)
        grad_cols = grad_cols.reshape(kh, kw, last - first, oh, ow, c_in)
        part = image[first:last]
        for ky in range(kh):
            ys = slice(ky, ky + sh * (oh - 1) + 1, sh)
            for kx in range(kw):
                part[:, ys, kx : kx + sw * (ow - 1) + 1 : sw] += grad_cols[ky, kx]
    return image


BAND_WIDTH = 4
"""Output columns per band in :func:`col2im_banded` (measured for the default model's
second conv layer: 2, 4, 8 columns took 2.31, 2.09, 2.68 ms with OpenBLAS's Haswell
kernels and 1.56, 1.30, 1.53 ms with its SkylakeX kernels, against 2.55 and 2.33 ms for
the offset-by-offset sum)."""


def col2im_banded(
    grad_rows: np.ndarray, weight: np.ndarray, padded_hw: IntPair, row_stride: int, out_hw: IntPair
) -> np.ndarray:
    """col2im for column stride 1 as one product per chunk and ``kh * out_w / band`` adds.

    A band of ``band`` neighbouring output columns reaches ``band + kW - 1`` input columns
    in each of the kH input rows below it. So one matrix product of the output gradient,
    taken ``band`` columns at a time ((..., band*C_out) rows), with a banded weight matrix
    (band*C_out, kH*(band+kW-1)*C_in) gives each band's whole contribution, and one add per
    (input row offset, band) puts it in place, in rows of ``(band+kW-1)*C_in`` floats. The
    band matrix is ``(band+kW-1)/kW`` times larger than the weights (its zeros are
    multiplied too), which is cheaper than 25 small products and adds.
    """
    n, _, c_out = grad_rows.shape
    _, c_in, kh, kw = weight.shape
    oh, ow = out_hw
    band = min(BAND_WIDTH, ow)
    bands = -(-ow // band)
    reach = band + kw - 1  # input columns one band of output columns touches
    grad = grad_rows.reshape(n, oh, ow, c_out)
    if bands * band != ow:  # zero columns up to whole bands; they add nothing
        grad = np.concatenate(
            [grad, np.zeros((n, oh, bands * band - ow, c_out), dtype=grad.dtype)], axis=2
        )
    banded = np.zeros((band, c_out, kh, reach, c_in), dtype=weight.dtype)
    weight_rows = np.permute_dims(weight, (0, 2, 3, 1))  # (C_out, kh, kw, C_in)
    for column in range(band):
        banded[column, :, :, column : column + kw] = weight_rows
    banded = banded.reshape(band * c_out, kh * reach * c_in)
    width = (bands - 1) * band + reach  # >= padded width; the extra columns stay 0
    image = np.zeros((n, padded_hw[0], width, c_in), dtype=grad_rows.dtype)
    for first, last in batch_chunks(n, oh * bands * kh * reach * c_in * grad_rows.itemsize):
        rows = grad[first:last].reshape(-1, band * c_out)
        contributions = (rows @ banded).reshape(last - first, oh, bands, kh, reach, c_in)
        part = image[first:last]
        for ky in range(kh):
            ys = slice(ky, ky + row_stride * (oh - 1) + 1, row_stride)
            for b in range(bands):
                part[:, ys, b * band : b * band + reach] += contributions[:, :, b, ky]
    return image[:, :, : padded_hw[1]]


def batch_chunks(n: int, bytes_per_image: int) -> Iterator[tuple[int, int]]:
    """(first, last) slices of the batch, each about :data:`COL2IM_CHUNK_BYTES` of work."""
    chunk = max(1, COL2IM_CHUNK_BYTES // max(bytes_per_image, 1))
    for first in range(0, n, chunk):
        yield first, min(first + chunk, n)


# --------------------------------------------------------------------------------------------
# Pooling with stride == kernel and no padding: the windows are a reshape
# --------------------------------------------------------------------------------------------


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
        with _compiled.one_thread() as loops:
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
        with _compiled.one_thread() as loops:
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


# --------------------------------------------------------------------------------------------
# Batch normalisation of (N, C, H, W) in channels-last memory
# --------------------------------------------------------------------------------------------


def wide_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(M, C) rows viewed as (M / r, r * C), r * C up to 256: a per-channel vector tiled r
    times broadcasts over rows of r * C floats, not C (measured on (100352, 16) float32:
    a subtraction 0.88 ms on 16-wide rows, 0.36 ms on 256-wide rows)."""
    m, c = rows.shape
    r = math.gcd(m, max(1, 256 // c))
    return rows.reshape(m // r, r * c), r


SUM_BLOCK = 256
"""Rows summed into one float32 partial before the partials are summed in float64: rows
of (M, C) in the compiled loops, wide rows (:func:`wide_rows`) in :func:`channel_sums`;
either way each partial rounds 256 terms, not M."""


def _fold(wide_sums: np.ndarray, c: int) -> np.ndarray:
    """Per-channel totals (C,) of sums over wide rows (r * C,), in float64."""
    return wide_sums.reshape(-1, c).sum(axis=0)


def channel_sums(rows: np.ndarray) -> np.ndarray:
    """Per-channel sums of (M, C) rows, in float64: float32 partials over blocks of
    :data:`SUM_BLOCK` wide rows (:func:`wide_rows`), then the partials in float64.

    A float32 ``ones @ rows`` over 100,352 rows left BatchNorm's gradient sums, which
    cancel, off by up to 2.7e-3 of the largest gradient (``mnist_resnet`` on MNIST); the
    blocked sums, 6.5e-6.
    """
    wide, _ = wide_rows(rows)
    whole = wide.shape[0] - wide.shape[0] % SUM_BLOCK
    total = np.zeros(wide.shape[1], dtype=np.float64)
    if whole:
        partials = wide[:whole].reshape(-1, SUM_BLOCK, wide.shape[1]).sum(axis=1)
        total += partials.sum(axis=0, dtype=np.float64)
    if whole < wide.shape[0]:
        total += wide[whole:].sum(axis=0, dtype=np.float64)
    return _fold(total, rows.shape[1])


@register(BACKEND, "batch_norm_forward")
def batch_norm_forward(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    *,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    training: bool,
    eps: float,
    relu: bool = False,
) -> tuple[np.ndarray, BatchNormSaved] | None:
    """Batch norm of 4-D input as (N*H*W, C) rows of channels-last memory (then ReLU, with
    ``relu``, in the same sweep).

    The generic reductions over axes (0, 2, 3) of a channels-last array run in short
    strided loops ((128, 16, 28, 28) float32: 12.8 ms forward, 14.7 ms backward). With the
    compiled loops this is three sweeps (:func:`_batch_norm_compiled`); without, the
    per-channel sums are blocked sums (:func:`channel_sums`) and every other pass one sweep
    over wide rows (:func:`wide_rows`).
    """
    if x.ndim != 4:
        return None
    n, c, h, w = x.shape
    rows = channels_last(x).reshape(n * h * w, c)
    count = rows.shape[0]
    batch_stats = training or running_mean is None or running_var is None
    loops = _compiled.available()
    if loops is not None:  # three compiled sweeps
        return _batch_norm_compiled(
            loops, x, rows, weight, bias, running_mean, running_var, batch_stats, eps, relu
        )
    wide, r = wide_rows(rows)
    if batch_stats:
        mean = (channel_sums(rows) / count).astype(x.dtype)
        x_hat = wide - np.tile(mean, r)
        var = channel_sums(np.square(x_hat).reshape(count, c)) / count
        var_unbiased = (var * (count / max(count - 1, 1))).astype(x.dtype)
    else:
        assert running_mean is not None
        assert running_var is not None
        mean, var, var_unbiased = running_mean, running_var, None
        x_hat = wide - np.tile(mean, r)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    x_hat *= np.tile(inv_std, r)
    out = x_hat.copy() if weight is None else x_hat * np.tile(weight, r)
    if bias is not None:
        out += np.tile(bias, r)
    if relu:
        np.maximum(out, x.dtype.type(0), out=out)  # as the ReLU kernel (NaN kept)
    stats = (mean, var_unbiased) if batch_stats else None
    return _batch_norm_result(x.shape, x_hat, out, inv_std, weight, stats, relu)


def _batch_norm_result(
    x_shape: tuple[int, ...],
    x_hat: np.ndarray,
    out: np.ndarray,
    inv_std: np.ndarray,
    weight: np.ndarray | None,
    stats: tuple[np.ndarray, np.ndarray | None] | None,
    relu: bool,
) -> tuple[np.ndarray, BatchNormSaved]:
    """The output and saved state of a batch norm forward whose ``x_hat`` and ``out`` are
    channels-last rows (any shape of that memory); ``stats``: the batch's (mean, unbiased
    variance), or None when normalised by the running statistics; ``relu``: ``out`` went
    through a ReLU, whose backward needs it."""
    n, c, h, w = x_shape
    shape = (1, c, 1, 1)
    out_nchw = as_nchw(out.reshape(n, h, w, c))
    saved = BatchNormSaved(
        as_nchw(x_hat.reshape(n, h, w, c)),
        inv_std.reshape(shape),
        None if weight is None else weight.reshape(shape),
        (0, 2, 3),
        stats is not None,
        None if stats is None else stats[0],
        None if stats is None else stats[1],
        BACKEND,
        out_nchw if relu else None,
    )
    return out_nchw, saved


def _batch_norm_compiled(
    loops: Any,
    x: np.ndarray,
    rows: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    batch_stats: bool,
    eps: float,
    relu: bool,
) -> tuple[np.ndarray, BatchNormSaved]:
    """:func:`batch_norm_forward` in three compiled sweeps over the (M, C) rows: the sums
    for the mean, those for the variance (of the centred rows, in float64 over float32
    blocks), and one that writes both the normalised rows and the output (measured on
    (128, 16, 28, 28): 9.2 -> 4.0 ms, against seven NumPy passes), ReLU'd with ``relu``.

    The sweeps run over wide rows (:func:`wide_rows`) with the per-channel vectors tiled
    to match: the loops' inner loop along a row of 16 channels was too short for LLVM's
    vector loop (it ran the scalar remainder), one of 256 floats is not (the sums over
    (100352, 16) float32 rows: 0.41 -> 0.20 ms)."""
    count, c = rows.shape
    dtype = x.dtype
    wide, r = wide_rows(rows)  # the loops' inner loops then run 256 floats, not C
    var_unbiased = None
    if batch_stats:
        sums = np.empty(wide.shape[1], dtype=np.float64)
        loops.channel_sums(wide, np.zeros(wide.shape[1], dtype=dtype), False, SUM_BLOCK, sums)
        mean = (_fold(sums, c) / count).astype(dtype)
        loops.channel_sums(wide, np.tile(mean, r), True, SUM_BLOCK, sums)
        var64 = _fold(sums, c) / count
        var_unbiased = (var64 * (count / max(count - 1, 1))).astype(dtype)
        inv_std = (1.0 / np.sqrt(var64 + eps)).astype(dtype)
    else:
        assert running_mean is not None
        assert running_var is not None
        mean = running_mean
        inv_std = (1.0 / np.sqrt(running_var + eps)).astype(dtype)
    none = np.empty(0, dtype=dtype)
    x_hat, out = np.empty_like(wide), np.empty_like(wide)
    with _compiled.one_thread():
        loops.normalize(
            wide,
            np.tile(mean, r),
            np.tile(inv_std, r),
            none if weight is None else np.tile(weight, r),
            none if bias is None else np.tile(bias, r),
            relu,
            x_hat,
            out,
        )
    stats = (mean, var_unbiased) if batch_stats else None
    return _batch_norm_result(x.shape, x_hat, out, inv_std, weight, stats, relu)


@register(BACKEND, "batch_norm_backward")
def batch_norm_backward(
    grad_out: np.ndarray, saved: BatchNormSaved, *, input_grad: bool = True
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """:func:`batch_norm_forward`'s gradients: per-channel sums (:func:`channel_sums`),
    then ``dx = a * g + b * x_hat + c`` with per-channel a, b, c, over wide rows; after a
    ReLU's backward first, if the forward had one."""
    n, c, h, w = grad_out.shape
    count = n * h * w
    x_hat = channels_last(saved.x_hat).reshape(count, c)
    loops = _compiled.available()
    if loops is not None:  # two compiled sweeps: the sums, then the input gradient
        grad = channels_last(grad_out).reshape(count, c)
        return _batch_norm_backward_compiled(loops, grad, x_hat, saved, (n, h, w), input_grad)
    if saved.relu_out is not None:
        grad_out = relu_backward(grad_out, saved.relu_out)
    grad = channels_last(grad_out).reshape(count, c)
    grad_bias = channel_sums(grad).astype(grad.dtype)
    grad_wide, r = wide_rows(grad)
    x_hat_wide = x_hat.reshape(grad_wide.shape)
    grad_weight = channel_sums((grad_wide * x_hat_wide).reshape(count, c)).astype(grad.dtype)
    has_weight = saved.weight is not None
    if not input_grad:
        return None, grad_weight if has_weight else None, grad_bias
    scale, along_x_hat, constant = _input_grad_coefficients(saved, grad_bias, grad_weight, count)
    grad_x = grad_wide * np.tile(scale, r)
    if saved.batch_stats:
        grad_x += x_hat_wide * np.tile(along_x_hat, r)
        grad_x += np.tile(constant, r)
    return as_nchw(grad_x.reshape(n, h, w, c)), grad_weight if has_weight else None, grad_bias


def _input_grad_coefficients(
    saved: BatchNormSaved, sum_grad: np.ndarray, sum_dot: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel (a, b, c) of ``dx = a * g + b * x_hat + c`` from ``sum_grad = sum(g)``
    and ``sum_dot = sum(g * x_hat)``: ``a = inv_std * weight``; with the batch's statistics
    ``b = -a * sum_dot / count`` and ``c = -a * sum_grad / count``, else zeros (the
    statistics are constants then)."""
    c = sum_grad.shape[0]
    scale = saved.inv_std.reshape(c)
    if saved.weight is not None:
        scale = scale * saved.weight.reshape(c)
    if not saved.batch_stats:
        zeros = np.zeros(c, dtype=sum_grad.dtype)
        return scale, zeros, zeros
    return scale, -scale * sum_dot / count, -scale * sum_grad / count


def _batch_norm_backward_compiled(
    loops: Any,
    grad: np.ndarray,
    x_hat: np.ndarray,
    saved: BatchNormSaved,
    nhw: tuple[int, int, int],
    input_grad: bool,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """:func:`batch_norm_backward` over (M, C) rows: one sweep for the two per-channel
    sums (float64 over float32 blocks), one for ``dx = a * g + b * x_hat + c``."""
    count, c = grad.shape
    dtype = grad.dtype
    grad_wide, r = wide_rows(grad)  # 256-float inner loops, as the forward's
    x_hat_wide = x_hat.reshape(grad_wide.shape)
    relu_out = np.empty((0, grad_wide.shape[1]), dtype=dtype)  # empty: no ReLU's mask
    if saved.relu_out is not None:  # a ReLU after the normalisation: its backward in both sweeps
        relu_out = channels_last(saved.relu_out).reshape(grad_wide.shape)
    sum_grad, sum_dot = np.empty(grad_wide.shape[1]), np.empty(grad_wide.shape[1])
    loops.grad_sums(grad_wide, x_hat_wide, relu_out, SUM_BLOCK, sum_grad, sum_dot)
    grad_bias, grad_weight = _fold(sum_grad, c).astype(dtype), _fold(sum_dot, c).astype(dtype)
    has_weight = saved.weight is not None
    if not input_grad:
        return None, grad_weight if has_weight else None, grad_bias
    coefficients = _input_grad_coefficients(saved, grad_bias, grad_weight, count)
    grad_x = np.empty_like(grad_wide)
    with _compiled.one_thread():
        tiled = [np.tile(v, r) for v in coefficients]
        loops.affine_pair(grad_wide, x_hat_wide, relu_out, *tiled, grad_x)
    n, h, w = nhw
    return as_nchw(grad_x.reshape(n, h, w, c)), grad_weight if has_weight else None, grad_bias


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


@register(BACKEND, "sigmoid_forward")
def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generic stable formula, ``1 / (1 + exp(-|x|))`` and ``e * that`` for x < 0,
    with a branch-free select in place of ``np.where`` (bit-equal); saved: the output."""
    e = np.exp(-np.abs(x))
    positive = 1.0 / (1.0 + e)
    out = select(x >= 0, positive, e * positive)
    return out, out


@register(BACKEND, "relu_backward")
def relu_backward(grad_out: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The gradient where the output is positive (or NaN, as PyTorch), else 0."""
    if _compiled.available():  # one pass over flat memory, both arrays in out's layout
        grad_out = same_layout(grad_out, out)
        flat_grad, flat_out = _flat_view(grad_out), _flat_view(out)
        if flat_grad is not None and flat_out is not None:
            result = np.empty_like(out, dtype=grad_out.dtype)  # out's layout
            with _compiled.one_thread() as loops:
                loops.relu_backward(flat_grad, flat_out, _flat_view(result))
            return result
    return zero_where(out <= 0, grad_out)


@register(BACKEND, "relu_forward")
def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``max(x, 0)`` against a scalar 0, in one pass (the generic code first allocates a
    zero array as large as ``x``); bit-equal, NaN kept. Saved: the output."""
    out = np.maximum(x, x.dtype.type(0))
    return out, out


def _flat_view(x: np.ndarray) -> np.ndarray | None:
    """``x``'s memory as a 1-D view if it is one contiguous block in some axis order."""
    order = np.argsort(x.strides)[::-1]
    dense = np.permute_dims(x, tuple(order))
    return dense.reshape(-1) if dense.flags.c_contiguous else None
