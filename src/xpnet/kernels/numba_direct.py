"""Direct convolution on the register-blocked micro-kernel (Numba): forward, weight and
input gradients.

im2col copies every window of the input into a column matrix, ``kH * kW`` times the
input's size, then hands it to BLAS: a 5x5 layer of 16 -> 32 channels at 28x28, batch 128,
writes 160 MB of columns to multiply them by a 400 x 32 matrix, a product too thin for
OpenBLAS (docs/history.md). Here the micro-kernel of
:mod:`xpnet.kernels.numba_products` reads the windows where they lie, in the padded
channels-last input:

- **Forward.** A block of the result is ROWS output positions (6 with the wide block)
  x 16 or 32 output channels. Each of a window's ``kH`` rows is ``kW * C_in`` contiguous
  floats, so the block is the micro-kernel's sum over ``kH`` segments of ``kW * C_in``
  steps against the weights as a (kH, kW * C_in, C_out) array, the sums in registers
  throughout. The block's rows are consecutive positions anywhere in the batch (an array
  of their windows' offsets), the last block's spare rows repeat the last position, and
  the sums start from the bias.
- **Weight gradient.** ``d(weight)[ky, kx, c, :]``, ROWS consecutive ``(kx, c)`` x 16 or
  32 output channels at a time, is the same micro-kernel with the roles turned: its inner
  dimension walks a run of up to :data:`DEPTH_RUN` output positions (each step at its own
  window's offset), ``b`` the output gradient. Each run sums in float32; the runs, one
  buffer per thread, add up in float64.
- **Input gradient.** ROWS output positions' window gradients at a time, (ROWS, C_out)
  of the output gradient times the (C_out, kH * kW * C_in) weights: added straight into
  the windows of the padded input's gradient by the micro-kernel where C_in is a multiple
  of 16 (the block's rows then never overlap), through a small buffer otherwise; one
  image's windows on one thread.

No bounds checks: :mod:`xpnet.kernels.direct` passes arrays of the documented shapes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .numba_products import (
    COLUMNS,
    ROWS,
    WIDE_COLUMNS,
    WIDE_ROWS,
    _add_block,
    _add_block_long,
    _add_block_wide,
    _block,
)

MOST_ROWS = max(ROWS, WIDE_ROWS)

DEPTH_RUN = 1024
"""Output positions a weight-gradient sum runs over in float32 before it joins the float64
total: long runs keep the micro-kernel's sums in registers (one image of a 4x4 map, 16
positions, was too short), short ones keep float32's rounding small."""


@njit(parallel=True, cache=True)
def conv_forward(  # pragma: no cover - compiled
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: tuple[int, int], parts: int,
    out: np.ndarray,
) -> None:  # fmt: skip
    """``out`` (N, out_h, out_w, C_out) = the convolution of padded channels-last ``x``
    (N, H_p, W_p, C_in) with ``weight`` (kH, kW * C_in, C_out), plus ``bias`` (C_out,);
    float32, C-contiguous, C_out a multiple of 16. The blocks are cut into ``parts`` (one
    a thread)."""
    n, hp, wp, c = x.shape
    kh, segment, c_out = weight.shape
    oh, ow = out.shape[1], out.shape[2]
    stride_h, stride_w = stride
    positions = n * oh * ow
    wide = c_out % WIDE_COLUMNS == 0  # the wide block where its columns fit
    block_rows = WIDE_ROWS if wide else ROWS
    blocks = -(-positions // block_rows)
    rows = out.reshape(positions, c_out)
    for part in prange(parts):
        windows = np.empty(MOST_ROWS, dtype=np.intp)  # each row's window in x
        outputs = np.empty(MOST_ROWS, dtype=np.intp)  # and its place in out
        first = part * blocks // parts * block_rows
        i, rest = first // (oh * ow), first % (oh * ow)
        oy, ox = rest // ow, rest % ow  # the next position, counted on (no divisions)
        for block in range(part * blocks // parts, (part + 1) * blocks // parts):
            for r in range(block_rows):
                q = block * block_rows + r
                if q < positions:
                    windows[r] = ((i * hp + oy * stride_h) * wp + ox * stride_w) * c
                    outputs[r] = q
                    ox += 1
                    if ox == ow:
                        ox, oy = 0, oy + 1
                        if oy == oh:
                            oy, i = 0, i + 1
                else:  # past the last position: the last one again (the same sums)
                    windows[r], outputs[r] = windows[r - 1], outputs[r - 1]
            for r in range(block_rows):
                rows[outputs[r]] = bias  # the block's sums start from the bias
            for r in range(block_rows):
                outputs[r] *= c_out
            if wide:
                for j in range(0, c_out, WIDE_COLUMNS):
                    _add_block_wide(
                        x, 0, windows, 1, weight, j, c_out, out, j, outputs,
                        segment, kh, wp * c, segment * c_out,
                    )  # fmt: skip
            else:
                for j in range(0, c_out, COLUMNS):
                    _add_block(
                        x, 0, windows, 1, weight, j, c_out, out, j, outputs,
                        segment, kh, wp * c, segment * c_out,
                    )  # fmt: skip


@njit(parallel=True, cache=True)
def conv_weight_grad(  # pragma: no cover - compiled
    x: np.ndarray,
    x_shape: tuple[int, int, int, int],
    grad: np.ndarray,
    stride: tuple[int, int],
    parts: int,
    out: np.ndarray,
) -> None:
    """``out`` (kH, S, C_out) float64 = d(loss)/d(weight) of :func:`conv_forward`, each
    window row's ``kW * C_in`` entries first in its S (a multiple of ROWS; the entries
    after them are sums of no use), from the padded input's ``x_shape`` (N, H_p, W_p, C_in)
    floats at the start of flat ``x`` (then at least ``S - kW * C_in`` more, any values)
    and the output gradient ``grad`` (N, out_h, out_w, C_out), C_out a multiple of 16; all
    float32 and C-contiguous. The output positions are cut into ``parts`` (one a thread),
    and those into runs of :data:`DEPTH_RUN`, each summed in float32 (the micro-kernel's
    inner dimension walks a run's windows, each step at its own offset), the runs in
    float64."""
    n, hp, wp, c = x_shape
    oh, ow, c_out = grad.shape[1], grad.shape[2], grad.shape[3]
    kh, segment = out.shape[0], out.shape[1]
    stride_h, stride_w = stride
    positions = n * oh * ow
    totals = np.zeros((parts, kh, segment, c_out), dtype=np.float64)
    long = c_out % WIDE_COLUMNS == 0  # ROWS x WIDE_COLUMNS blocks where they fit
    for part in prange(parts):
        run_sums = np.empty((kh, segment, c_out), dtype=np.float32)
        windows = np.empty(DEPTH_RUN, dtype=np.intp)  # each step's window in x
        first, last = part * positions // parts, (part + 1) * positions // parts
        i, rest = first // (oh * ow), first % (oh * ow)
        oy, ox = rest // ow, rest % ow  # the next position, counted on
        for start in range(first, last, DEPTH_RUN):
            depth = min(DEPTH_RUN, last - start)
            for t in range(depth):
                windows[t] = ((i * hp + oy * stride_h) * wp + ox * stride_w) * c
                ox += 1
                if ox == ow:
                    ox, oy = 0, oy + 1
                    if oy == oh:
                        oy, i = 0, i + 1
            run_sums[:] = 0
            for ky in range(kh):
                for k in range(0, segment, ROWS):
                    if long:
                        for j in range(0, c_out, WIDE_COLUMNS):
                            _add_block_long(
                                x, ky * wp * c + k, 1, windows, grad, start * c_out + j, c_out,
                                run_sums, (ky * segment + k) * c_out + j, c_out, depth, 1, 0, 0,
                            )  # fmt: skip
                    else:
                        for j in range(0, c_out, COLUMNS):
                            _add_block(
                                x, ky * wp * c + k, 1, windows, grad, start * c_out + j, c_out,
                                run_sums, (ky * segment + k) * c_out + j, c_out, depth, 1, 0, 0,
                            )  # fmt: skip
            totals[part] += run_sums
    out[:] = 0
    for part in range(parts):
        out += totals[part]


@njit(parallel=True, cache=True)
def conv_input_grad(  # pragma: no cover - compiled
    grad: np.ndarray, weight_t: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
    out: np.ndarray,
) -> None:  # fmt: skip
    """``out`` (N, H_p, W_p, C_in) = d(loss)/d(padded x) of :func:`conv_forward` from the
    output gradient ``grad`` (N, out_h, out_w, C_out) and ``weight_t`` (C_out, K16): the
    weights as (C_out, kH * kW * C_in) rows, zero columns after them up to a multiple of
    16. All float32, C-contiguous; one image a thread (neighbouring windows overlap)."""
    n, oh, ow, c_out = grad.shape
    hp, wp, c = out.shape[1], out.shape[2], out.shape[3]
    width = weight_t.shape[1]
    (kh, kw), (stride_h, stride_w) = kernel, stride
    segment = kw * c
    positions = oh * ow
    # With C_in a multiple of 16, each 16 columns of a window row lie in one row of the
    # input, and the blocks of ROWS windows do not overlap (same row: ``stride * C_in >=
    # 16`` floats apart; other rows: other input rows): the micro-kernel adds its block
    # straight into the input's gradient (it loads all its rows' sums before it stores
    # any). Otherwise, and for an image's last block, the window gradients go to ``sums``
    # first, and each window row is added as a whole.
    in_place = c % COLUMNS == 0
    long = c % WIDE_COLUMNS == 0  # the same with WIDE_COLUMNS (stride * C_in >= them too)
    grad_rows = grad.reshape(n * positions, c_out)
    flat = out.reshape(-1)
    for i in prange(n):
        out[i] = 0
        sums = np.empty((ROWS, width), dtype=np.float32)
        windows = np.empty(ROWS, dtype=np.intp)  # each row's window in out
        rows = np.empty(ROWS, dtype=np.intp)  # and its gradient row
        for q in range(0, positions, ROWS):
            count = min(ROWS, positions - q)
            for r in range(ROWS):  # past the image's last position: that one again
                position = q + min(r, count - 1)
                oy, ox = position // ow, position % ow
                windows[r] = ((i * hp + oy * stride_h) * wp + ox * stride_w) * c
                rows[r] = (i * positions + position) * c_out
            if in_place and count == ROWS:
                for ky in range(kh):
                    if long:  # ROWS x WIDE_COLUMNS blocks
                        for j in range(0, segment, WIDE_COLUMNS):
                            _add_block_long(
                                grad_rows, 0, rows, 1, weight_t, ky * segment + j, width,
                                out, ky * wp * c + j, windows, c_out, 1, 0, 0,
                            )  # fmt: skip
                    else:
                        for j in range(0, segment, COLUMNS):
                            _add_block(
                                grad_rows, 0, rows, 1, weight_t, ky * segment + j, width,
                                out, ky * wp * c + j, windows, c_out, 1, 0, 0,
                            )  # fmt: skip
                continue
            for j in range(0, width, COLUMNS):
                _block(
                    grad_rows, 0, rows, 1, weight_t, j, width, sums, j, width,
                    c_out, 1, 0, 0,
                )  # fmt: skip
            for r in range(count):
                for ky in range(kh):
                    start = windows[r] + ky * wp * c
                    window_row = flat[start : start + segment]  # kW * C_in floats in a row
                    window_row += sums[r, ky * segment : (ky + 1) * segment]


__all__ = ["conv_forward", "conv_input_grad", "conv_weight_grad"]
