"""Convolution on NumPy: a direct convolution for float32 layers of 8 or more output
channels (:mod:`xpnet.kernels.direct`), Winograd's F(2x2, 3x3) for 3x3 stride-1
layers (:mod:`xpnet.kernels.winograd`; it takes those of many channels and large batches
from the direct loops, :func:`xpnet.kernels.direct.beats_winograd`), else im2col from
channels-last memory, with col2im offset by offset or in bands."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..._saved import Conv2dSaved
from ..._shapes import output_hw
from ..._typing import IntPair
from .. import direct, winograd
from .._registry import register
from ._layout import BACKEND, as_nchw, channels_last

COL2IM_CHUNK_BYTES = 2**21
"""col2im works through the batch in chunks whose column gradients take about this many
bytes, so each chunk's image and columns stay in the CPU cache (measured: 2 MiB best)."""


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
    oh, ow = output_hw((h, w), (kh, kw), stride, padding)
    by_loops = direct.applies(tuple(weight.shape), x.dtype) and weight.dtype == x.dtype
    if winograd.applies((kh, kw), stride, c_in) and not (
        by_loops and direct.beats_winograd(c_in, c_out, n * oh * ow)
    ):
        out, tiles = winograd.conv2d(x, weight, bias, padding)
        saved = Conv2dSaved(tiles, weight, tuple(x.shape), stride, padding, has_bias, BACKEND)
        return as_nchw(out), saved
    if by_loops:
        out, direct_input = direct.conv2d(channels_last(x), weight, bias, stride, padding, (oh, ow))
        saved = Conv2dSaved(
            direct_input, weight, tuple(x.shape), stride, padding, has_bias, BACKEND
        )
        return as_nchw(out), saved
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
    grad_rows = channels_last(grad_out).reshape(n * oh * ow, c_out)
    if isinstance(saved.cols, direct.DirectInput):
        grad_nhwc = grad_rows.reshape(n, oh, ow, c_out)  # a view: grad_rows is C-contiguous
        return _direct_backward(grad_nhwc, grad_rows, saved, saved.cols, input_grad)
    k = kh * kw * c_in
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


def _direct_backward(
    grad_nhwc: np.ndarray,
    grad_rows: np.ndarray,
    saved: Conv2dSaved,
    direct_input: direct.DirectInput,
    input_grad: bool,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """:func:`conv2d_backward` of a direct forward, from the channels-last output gradient
    and its (N*L, C_out) rows (the same memory: one copy of ``grad_out`` at most)."""
    grad_x, grad_weight = direct.conv2d_backward(
        grad_nhwc, direct_input, saved.stride, saved.padding, input_grad=input_grad
    )
    grad_bias = None
    if saved.has_bias:
        grad_bias = grad_rows.sum(axis=0, dtype=np.float64).astype(saved.weight.dtype)
    return (None if grad_x is None else as_nchw(grad_x)), grad_weight, grad_bias


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
