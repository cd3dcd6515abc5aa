"""Compiled one-pass loops (Numba) for the NumPy kernels: ``pip install "xpnet[numba]"``.

NumPy runs each elementwise step as a pass over memory, on one core; a layer's glue
(Winograd's tile transforms, max pooling with its argmax, ReLU's backward) takes several
such passes. Each function here is ONE pass: a loop over the images that reads its input
once and writes its results once. The arithmetic is the same as the NumPy code it replaces
(bit-equal for pooling and ReLU; the Winograd transforms have no NumPy twin in use, and
are checked against the generic convolution by ``tests/test_kernels.py``).

Imported only through :mod:`xpnet.kernels._compiled`, which also runs them on one thread
(see :func:`xpnet.kernels._compiled.loop_threads`). No bounds checks: the callers pass
arrays of the shapes documented here (the functional ops check gradient shapes first).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from .numba_direct import conv_forward, conv_input_grad, conv_weight_grad
from .numba_products import fits, products, products_at


@njit(parallel=True, cache=True)
def transform_input(x: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """V = B^T d B of every 4x4 tile (stride 2) of padded channels-last ``x`` (n, 2*th + 2,
    2*tw + 2, C) into ``out`` (16, n, th, tw, C)."""
    n, th, tw, c = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    for i in prange(n):
        for ty in range(th):
            y = 2 * ty
            for tx in range(tw):
                x0 = 2 * tx
                for ch in range(c):
                    # rows: t[a][s] = (B^T d)[a][s]
                    t00 = x[i, y, x0, ch] - x[i, y + 2, x0, ch]
                    t01 = x[i, y, x0 + 1, ch] - x[i, y + 2, x0 + 1, ch]
                    t02 = x[i, y, x0 + 2, ch] - x[i, y + 2, x0 + 2, ch]
                    t03 = x[i, y, x0 + 3, ch] - x[i, y + 2, x0 + 3, ch]
                    t10 = x[i, y + 1, x0, ch] + x[i, y + 2, x0, ch]
                    t11 = x[i, y + 1, x0 + 1, ch] + x[i, y + 2, x0 + 1, ch]
                    t12 = x[i, y + 1, x0 + 2, ch] + x[i, y + 2, x0 + 2, ch]
                    t13 = x[i, y + 1, x0 + 3, ch] + x[i, y + 2, x0 + 3, ch]
                    t20 = x[i, y + 2, x0, ch] - x[i, y + 1, x0, ch]
                    t21 = x[i, y + 2, x0 + 1, ch] - x[i, y + 1, x0 + 1, ch]
                    t22 = x[i, y + 2, x0 + 2, ch] - x[i, y + 1, x0 + 2, ch]
                    t23 = x[i, y + 2, x0 + 3, ch] - x[i, y + 1, x0 + 3, ch]
                    t30 = x[i, y + 1, x0, ch] - x[i, y + 3, x0, ch]
                    t31 = x[i, y + 1, x0 + 1, ch] - x[i, y + 3, x0 + 1, ch]
                    t32 = x[i, y + 1, x0 + 2, ch] - x[i, y + 3, x0 + 2, ch]
                    t33 = x[i, y + 1, x0 + 3, ch] - x[i, y + 3, x0 + 3, ch]
                    # columns: v[a][b] = (t B)[a][b]
                    out[0, i, ty, tx, ch] = t00 - t02
                    out[1, i, ty, tx, ch] = t01 + t02
                    out[2, i, ty, tx, ch] = t02 - t01
                    out[3, i, ty, tx, ch] = t01 - t03
                    out[4, i, ty, tx, ch] = t10 - t12
                    out[5, i, ty, tx, ch] = t11 + t12
                    out[6, i, ty, tx, ch] = t12 - t11
                    out[7, i, ty, tx, ch] = t11 - t13
                    out[8, i, ty, tx, ch] = t20 - t22
                    out[9, i, ty, tx, ch] = t21 + t22
                    out[10, i, ty, tx, ch] = t22 - t21
                    out[11, i, ty, tx, ch] = t21 - t23
                    out[12, i, ty, tx, ch] = t30 - t32
                    out[13, i, ty, tx, ch] = t31 + t32
                    out[14, i, ty, tx, ch] = t32 - t31
                    out[15, i, ty, tx, ch] = t31 - t33


@njit(parallel=True, cache=True)
def transform_output(m: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Y = A^T M A (+ bias) of every tile: ``m`` (16, n, th, tw, K) -> ``out`` (n, out_h,
    out_w, K), dropping the last tiles' row or column beyond odd output sizes. ``bias``
    has K entries or none."""
    n, th, tw, k = m.shape[1], m.shape[2], m.shape[3], m.shape[4]
    oh, ow = out.shape[1], out.shape[2]
    has_bias = bias.shape[0] > 0
    for i in prange(n):
        y4 = np.empty((4, k), dtype=out.dtype)  # one tile's 2x2 outputs, for every channel
        for ty in range(th):
            y = 2 * ty
            for tx in range(tw):
                x0 = 2 * tx
                for ch in range(k):
                    m11 = m[5, i, ty, tx, ch]
                    if has_bias:
                        m11 = m11 + bias[ch]
                    # rows of A^T M: top = m0 + (m1 + m2), bottom = (m1 - m2) - m3
                    s00 = m[0, i, ty, tx, ch] + (m[4, i, ty, tx, ch] + m[8, i, ty, tx, ch])
                    s01 = m[1, i, ty, tx, ch] + (m11 + m[9, i, ty, tx, ch])
                    s02 = m[2, i, ty, tx, ch] + (m[6, i, ty, tx, ch] + m[10, i, ty, tx, ch])
                    s03 = m[3, i, ty, tx, ch] + (m[7, i, ty, tx, ch] + m[11, i, ty, tx, ch])
                    s10 = (m[4, i, ty, tx, ch] - m[8, i, ty, tx, ch]) - m[12, i, ty, tx, ch]
                    s11 = (m11 - m[9, i, ty, tx, ch]) - m[13, i, ty, tx, ch]
                    s12 = (m[6, i, ty, tx, ch] - m[10, i, ty, tx, ch]) - m[14, i, ty, tx, ch]
                    s13 = (m[7, i, ty, tx, ch] - m[11, i, ty, tx, ch]) - m[15, i, ty, tx, ch]
                    # columns: y0 = s0 + (s1 + s2), y1 = (s1 - s2) - s3
                    y4[0, ch] = s00 + (s01 + s02)
                    y4[1, ch] = (s01 - s02) - s03
                    y4[2, ch] = s10 + (s11 + s12)
                    y4[3, ch] = (s11 - s12) - s13
                for r in range(min(2, oh - y)):
                    for s in range(min(2, ow - x0)):
                        for ch in range(k):
                            out[i, y + r, x0 + s, ch] = y4[2 * r + s, ch]


@njit(parallel=True, cache=True)
def transform_grad(g: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """dM = A dY A^T of every tile: ``g`` (n, out_h, out_w, K), zero beyond its edges ->
    ``out`` (16, n, th, tw, K)."""
    n, th, tw, k = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    oh, ow = g.shape[1], g.shape[2]
    for i in prange(n):
        g4 = np.zeros((4, k), dtype=g.dtype)  # one tile's 2x2 gradients (0 beyond the edges)
        for ty in range(th):
            y = 2 * ty
            for tx in range(tw):
                x0 = 2 * tx
                if y + 1 >= oh or x0 + 1 >= ow:
                    g4[:] = 0
                for r in range(min(2, oh - y)):
                    for s in range(min(2, ow - x0)):
                        for ch in range(k):
                            g4[2 * r + s, ch] = g[i, y + r, x0 + s, ch]
                for ch in range(k):
                    g00, g01, g10, g11 = g4[0, ch], g4[1, ch], g4[2, ch], g4[3, ch]
                    # columns b: c_y = (g_y0, g_y0 + g_y1, g_y0 - g_y1, -g_y1)
                    c01 = g00 + g01
                    c02 = g00 - g01
                    c03 = -g01
                    c11 = g10 + g11
                    c12 = g10 - g11
                    c13 = -g11
                    # rows a: (c0, c0 + c1, c0 - c1, -c1)
                    out[0, i, ty, tx, ch] = g00
                    out[1, i, ty, tx, ch] = c01
                    out[2, i, ty, tx, ch] = c02
                    out[3, i, ty, tx, ch] = c03
                    out[4, i, ty, tx, ch] = g00 + g10
                    out[5, i, ty, tx, ch] = c01 + c11
                    out[6, i, ty, tx, ch] = c02 + c12
                    out[7, i, ty, tx, ch] = c03 + c13
                    out[8, i, ty, tx, ch] = g00 - g10
                    out[9, i, ty, tx, ch] = c01 - c11
                    out[10, i, ty, tx, ch] = c02 - c12
                    out[11, i, ty, tx, ch] = c03 - c13
                    out[12, i, ty, tx, ch] = -g10
                    out[13, i, ty, tx, ch] = -c11
                    out[14, i, ty, tx, ch] = -c12
                    out[15, i, ty, tx, ch] = -c13


@njit(parallel=True, cache=True)
def transform_window_grad(dv: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """E = B dV B^T of every tile: ``dv`` (16, n, th, tw, C) -> ``out`` (same shape), the
    gradient of each tile's 4x4 input window (B = (B^T)^T; its columns are (1, 0, 0, 0),
    (0, 1, -1, 1), (-1, 1, 1, 0) and (0, 0, 0, -1)). Adds and subtracts only, in the
    layout of :func:`transform_input`: 16 streams in and 16 out, vectorised along the
    channels, where the (16, 16) product ``INPUT_GRAD @ dV`` multiplied by zeros and ones."""
    n, th, tw, c = dv.shape[1], dv.shape[2], dv.shape[3], dv.shape[4]
    for i in prange(n):
        for ty in range(th):
            for tx in range(tw):
                for ch in range(c):
                    # rows: t[r][b] = (B dV)[r][b]
                    t00 = dv[0, i, ty, tx, ch]
                    t01 = dv[1, i, ty, tx, ch]
                    t02 = dv[2, i, ty, tx, ch]
                    t03 = dv[3, i, ty, tx, ch]
                    t10 = (dv[4, i, ty, tx, ch] - dv[8, i, ty, tx, ch]) + dv[12, i, ty, tx, ch]
                    t11 = (dv[5, i, ty, tx, ch] - dv[9, i, ty, tx, ch]) + dv[13, i, ty, tx, ch]
                    t12 = (dv[6, i, ty, tx, ch] - dv[10, i, ty, tx, ch]) + dv[14, i, ty, tx, ch]
                    t13 = (dv[7, i, ty, tx, ch] - dv[11, i, ty, tx, ch]) + dv[15, i, ty, tx, ch]
                    t20 = (dv[4, i, ty, tx, ch] + dv[8, i, ty, tx, ch]) - t00
                    t21 = (dv[5, i, ty, tx, ch] + dv[9, i, ty, tx, ch]) - t01
                    t22 = (dv[6, i, ty, tx, ch] + dv[10, i, ty, tx, ch]) - t02
                    t23 = (dv[7, i, ty, tx, ch] + dv[11, i, ty, tx, ch]) - t03
                    t30 = -dv[12, i, ty, tx, ch]
                    t31 = -dv[13, i, ty, tx, ch]
                    t32 = -dv[14, i, ty, tx, ch]
                    t33 = -dv[15, i, ty, tx, ch]
                    # columns: e[r][s] = (t B^T)[r][s], the same combinations along b
                    out[0, i, ty, tx, ch] = t00
                    out[1, i, ty, tx, ch] = (t01 - t02) + t03
                    out[2, i, ty, tx, ch] = (t01 + t02) - t00
                    out[3, i, ty, tx, ch] = -t03
                    out[4, i, ty, tx, ch] = t10
                    out[5, i, ty, tx, ch] = (t11 - t12) + t13
                    out[6, i, ty, tx, ch] = (t11 + t12) - t10
                    out[7, i, ty, tx, ch] = -t13
                    out[8, i, ty, tx, ch] = t20
                    out[9, i, ty, tx, ch] = (t21 - t22) + t23
                    out[10, i, ty, tx, ch] = (t21 + t22) - t20
                    out[11, i, ty, tx, ch] = -t23
                    out[12, i, ty, tx, ch] = t30
                    out[13, i, ty, tx, ch] = (t31 - t32) + t33
                    out[14, i, ty, tx, ch] = (t31 + t32) - t30
                    out[15, i, ty, tx, ch] = -t33


@njit(parallel=True, cache=True)
def add_windows(e: np.ndarray, pad_h: int, pad_w: int, out: np.ndarray) -> None:  # pragma: no cover
    """Every tile's 4x4 window gradient ``e`` (16, n, th, tw, C) added into its window of
    ``out`` (n, H, W, C), zeroed first: the windows start at ``(2*ty - pad_h, 2*tx -
    pad_w)`` and what falls in the padding is dropped.

    Each add runs along the channels of one pixel: two contiguous rows, vectorised. (The
    transform B dV B^T folded into this loop, 16 loads and 16 stores a channel, was not
    vectorised and took 2-3x the time of the 16x16 product that now does it.) A row of
    tiles takes one window offset at a time (offset outer, the row's tiles inner), as
    max pooling's forward: 0.63-0.75x the time of each tile's window in turn (paired
    calls; 16 channels at 14x14, batch 128: 1.02 -> 0.65 ms). A pixel's (at most 4)
    contributions are then added in another order than tile by tile.
    """
    n, th, tw, c = e.shape[1], e.shape[2], e.shape[3], e.shape[4]
    h, w = out.shape[1], out.shape[2]
    for i in prange(n):
        out[i] = 0
        for ty in range(th):
            y0 = 2 * ty - pad_h
            for r in range(max(0, -y0), min(4, h - y0)):
                y = y0 + r
                for s in range(4):
                    t = 4 * r + s
                    for tx in range(tw):
                        x = 2 * tx - pad_w + s
                        if x < 0 or x >= w:
                            continue
                        for ch in range(c):  # indexed in place: views here cost 2x
                            out[i, y, x, ch] += e[t, i, ty, tx, ch]


# --------------------------------------------------------------------------------------------
# Max pooling with stride == kernel and ReLU's backward: one pass each
# --------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
def max_pool_forward(
    x: np.ndarray, kh: int, kw: int, out: np.ndarray, argmax: np.ndarray, nan_in: np.ndarray
) -> None:  # pragma: no cover
    """Max and argmax (first maximum, row-major window order) of every kh x kw window
    (stride = kernel) of channels-last ``x`` (n, H, W, C) into ``out`` and ``argmax`` (n,
    H // kh, W // kw, C; int32), and ``nan_in[i]``: whether image i holds a NaN (then the
    results are not used).

    The inner loops run along the channels of one window pixel (contiguous), so LLVM
    vectorises them; that needs an argmax as wide as the floats (a uint8 argmax beside
    float32 values measured 4.6x slower: 13.6 against 2.9 ms on (128, 28, 28, 32)). A
    row of outputs takes one window offset at a time (offset outermost, then the row's
    windows): 0.45x the time of each window's offsets in turn at 16 channels (2.76 -> 1.25
    ms on (128, 28, 28, 16), paired calls), 0.59x at 32, 0.68x at 64; the NaN check is a
    count.
    """
    n, oh, ow, c = out.shape
    for i in prange(n):
        nans = 0
        for oy in range(oh):
            for ox in range(ow):  # the windows' first pixels
                for ch in range(c):
                    value = x[i, oy * kh, ox * kw, ch]
                    nans += value != value
                    out[i, oy, ox, ch] = value
                    argmax[i, oy, ox, ch] = 0
            for k in range(1, kh * kw):  # then each further offset, along the whole row
                offset = argmax.dtype.type(k)
                y, dx = oy * kh + k // kw, k % kw
                for ox in range(ow):
                    for ch in range(c):
                        value = x[i, y, ox * kw + dx, ch]
                        nans += value != value
                        best = out[i, oy, ox, ch]
                        larger = value > best
                        out[i, oy, ox, ch] = value if larger else best
                        argmax[i, oy, ox, ch] = offset if larger else argmax[i, oy, ox, ch]
        nan_in[i] = nans > 0


@njit(parallel=True, cache=True)
def max_pool_backward(
    grad: np.ndarray, argmax: np.ndarray, kh: int, kw: int, out: np.ndarray
) -> None:  # pragma: no cover
    """Every window pixel of ``out`` (n, H, W, C; channels-last) gets its window's output
    gradient if it is the argmax, else 0; pixels in no window (floor mode) get 0.
    ``grad`` and ``argmax`` (int32) are channels-last (n, H // kh, W // kw, C)."""
    n, oh, ow, c = grad.shape
    h, w = out.shape[1], out.shape[2]
    zero = out.dtype.type(0)
    for i in prange(n):
        for y in range(oh * kh, h):
            out[i, y] = 0
        for oy in range(oh):
            for ky in range(kh):
                y = oy * kh + ky
                for x0 in range(ow * kw, w):
                    out[i, y, x0] = 0
                for ox in range(ow):
                    g = grad[i, oy, ox]
                    index = argmax[i, oy, ox]
                    for kx in range(kw):
                        offset = argmax.dtype.type(ky * kw + kx)
                        pixel = out[i, y, ox * kw + kx]
                        for ch in range(c):
                            pixel[ch] = g[ch] if index[ch] == offset else zero


@njit(parallel=True, cache=True)
def relu_backward(
    grad: np.ndarray, out: np.ndarray, result: np.ndarray
) -> None:  # pragma: no cover
    """``result = 0 where out <= 0 else grad``, over 1-D arrays."""
    zero = result.dtype.type(0)
    for i in prange(grad.shape[0]):
        result[i] = zero if out[i] <= 0 else grad[i]


# --------------------------------------------------------------------------------------------
# Batch normalisation over (M, C) channels-last rows: per-channel sums, then one sweep.
# The callers pass wide rows (r rows of C side by side, r * C = 256; per-channel vectors
# tiled r times, sums folded after): "channel" below is a column of what is passed.
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def channel_sums(
    rows: np.ndarray, shift: np.ndarray, square: bool, block: int, out: np.ndarray
) -> None:  # pragma: no cover
    """``out[c] = sum over rows of (rows[:, c] - shift[c])`` (squared if ``square``), in
    float64 (``out``), over blocks of ``block`` rows summed in the rows' dtype (vectorised,
    and each partial's rounding that of ``block`` terms, not of M)."""
    m, c = rows.shape
    out[:] = 0
    partial = np.empty(c, dtype=rows.dtype)
    for first in range(0, m, block):
        partial[:] = 0
        for r in range(first, min(first + block, m)):
            row = rows[r]
            for ch in range(c):
                value = row[ch] - shift[ch]
                partial[ch] += value * value if square else value
        for ch in range(c):
            out[ch] += partial[ch]


@njit(parallel=True, cache=True)
def normalize(
    rows: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    x_hat: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """``x_hat = (rows - mean) * inv_std`` and ``out = x_hat * weight + bias`` in one sweep
    over (M, C) rows; ``weight`` and ``bias`` may be empty (no scale, no shift). With
    ``relu``, ``out`` is then ``max(out, 0)`` (NaN kept), as the ReLU kernel's."""
    m, c = rows.shape
    scaled, shifted = weight.shape[0] > 0, bias.shape[0] > 0
    zero = out.dtype.type(0)
    for r in prange(m):
        row, normal, result = rows[r], x_hat[r], out[r]
        for ch in range(c):
            value = (row[ch] - mean[ch]) * inv_std[ch]
            normal[ch] = value
            if scaled:
                value = value * weight[ch]
            if shifted:
                value = value + bias[ch]
            if relu and value <= zero:
                value = zero
            result[ch] = value


@njit(cache=True)
def grad_sums(
    grad: np.ndarray,
    x_hat: np.ndarray,
    relu_out: np.ndarray,
    block: int,
    sum_grad: np.ndarray,
    sum_dot: np.ndarray,
) -> None:  # pragma: no cover
    """Per channel, in float64: ``sum_grad = sum(grad)`` and ``sum_dot = sum(grad * x_hat)``
    over (M, C) rows in one sweep, blocks of ``block`` rows summed in the rows' dtype (as
    :func:`channel_sums`, which would take two sweeps and a product array). A non-empty
    ``relu_out`` (the rows of a ReLU's output after the normalisation) first zeroes the
    gradient where it is ``<= 0``, as :func:`relu_backward`."""
    m, c = grad.shape
    masked = relu_out.shape[0] > 0
    zero = grad.dtype.type(0)
    sum_grad[:] = 0
    sum_dot[:] = 0
    part_grad = np.empty(c, dtype=grad.dtype)
    part_dot = np.empty(c, dtype=grad.dtype)
    for first in range(0, m, block):
        part_grad[:] = 0
        part_dot[:] = 0
        for r in range(first, min(first + block, m)):
            g, h = grad[r], x_hat[r]
            if masked:
                y = relu_out[r]
                for ch in range(c):  # = (0 if y <= 0 else g), spelled so it vectorises
                    value = g[ch] if (y[ch] > zero or y[ch] != y[ch]) else zero
                    part_grad[ch] += value
                    part_dot[ch] += value * h[ch]
            else:
                for ch in range(c):
                    part_grad[ch] += g[ch]
                    part_dot[ch] += g[ch] * h[ch]
        for ch in range(c):
            sum_grad[ch] += part_grad[ch]
            sum_dot[ch] += part_dot[ch]


@njit(parallel=True, cache=True)
def affine_pair(
    grad: np.ndarray,
    x_hat: np.ndarray,
    relu_out: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    c0: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """``out = a * grad + b * x_hat + c0`` (per-channel a, b, c0) over (M, C) rows, the
    gradient zeroed first where a non-empty ``relu_out`` is ``<= 0`` (:func:`grad_sums`)."""
    m, c = grad.shape
    masked = relu_out.shape[0] > 0
    zero = grad.dtype.type(0)
    for r in prange(m):
        if masked:  # indexed in place: row views here took 1.4x the time
            for ch in range(c):
                y = relu_out[r, ch]
                value = grad[r, ch] if (y > zero or y != y) else zero
                out[r, ch] = (a[ch] * value + b[ch] * x_hat[r, ch]) + c0[ch]
        else:
            g, h, result = grad[r], x_hat[r], out[r]
            for ch in range(c):
                result[ch] = (a[ch] * g[ch] + b[ch] * h[ch]) + c0[ch]


__all__ = [
    "add_windows",
    "affine_pair",
    "channel_sums",
    "conv_forward",
    "conv_input_grad",
    "conv_weight_grad",
    "fits",
    "get_num_threads",
    "grad_sums",
    "max_pool_backward",
    "max_pool_forward",
    "normalize",
    "products",
    "products_at",
    "relu_backward",
    "set_num_threads",
    "transform_grad",
    "transform_input",
    "transform_output",
    "transform_window_grad",
]
