"""Direct convolution on NumPy, forward and backward, without im2col's column matrix.

The compiled loops are :mod:`xpnet.kernels.numba_direct`'s (through
:mod:`xpnet.kernels.numba_loops`, on :func:`~xpnet.kernels._compiled.loop_threads`); this
module pads the input, lays the weights out for them and makes the gradients. It takes
float32 layers of at least :data:`MIN_OUT_CHANNELS` output channels (:func:`applies`),
3x3 stride-1 layers only where Winograd's F(2x2, 3x3) would not do better
(:func:`beats_winograd`). im2col wrote ``kH * kW`` times the input into memory and handed
OpenBLAS products too thin for it (a 5x5 layer of 16 -> 32 channels ran at 2-3x PyTorch's
time). The backward keeps only the padded input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._typing import IntPair
from . import _compiled


class DirectInput(NamedTuple):
    """What the backward needs: the padded channels-last input and the weights."""

    x_padded: np.ndarray  # (N, H + 2 ph, W + 2 pw, C_in), C-contiguous
    weight: np.ndarray  # (C_out, C_in, kH, kW)


MIN_OUT_CHANNELS = 8
"""Layers of fewer output channels than a block (16) but at least this many run with their
filters padded to 16 by zero filters (at most twice the multiply-adds; LeNet's 6 filters
would be 2.7 times)."""


def applies(weight_shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether the direct loops run this layer's forward and input gradient: float32, at
    least :data:`MIN_OUT_CHANNELS` output channels (padded to a block of 16 where they do
    not fill one), and the compiled loops available."""
    if dtype != np.float32 or _compiled.available() is None:
        return False
    return weight_shape[0] >= MIN_OUT_CHANNELS


WINOGRAD_MIN_CHANNEL_PAIRS = 32 * 32
"""3x3 stride-1 layers of at least this many channel pairs (C_in * C_out) go to Winograd's
F(2x2, 3x3) where both apply (:func:`beats_winograd`): measured in alternating pairs at
batch 128 (forward + backward), the direct loops took 0.49x Winograd's time on 16 -> 16
channels at 14x14 and 0.84-1.04x on 16 -> 32, 1.03x on 32 -> 32 at 7x7, and 1.05-1.50x on
32 -> 64 and 64 -> 64 (docs/history.md, seventh pass)."""

WINOGRAD_MIN_POSITIONS = 4096
"""...and at least this many output positions (N * out_h * out_w): Winograd's fixed cost
a call (the weights' transform, the blocks' set-up) is 40-70 us, which a small batch does
not repay (one image, 16 -> 16 channels at 14x14: 71 us forward against the direct
loops' 38)."""


def beats_winograd(c_in: int, c_out: int, positions: int) -> bool:
    """Whether a 3x3 stride-1 layer that both take runs on the direct loops."""
    return c_in * c_out < WINOGRAD_MIN_CHANNEL_PAIRS or positions < WINOGRAD_MIN_POSITIONS


def pad_input(x_nhwc: np.ndarray, padding: IntPair) -> np.ndarray:
    """``x_nhwc`` zero-padded, as one C-contiguous array (the input itself when it is one
    and needs no padding)."""
    (ph, pw), (n, h, w, c) = padding, x_nhwc.shape
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x_nhwc)
    padded = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x_nhwc.dtype)
    padded[:, ph : ph + h, pw : pw + w] = x_nhwc
    return padded


def window_rows(weight: np.ndarray) -> np.ndarray:
    """(C_out, C_in, kH, kW) -> (kH, kW * C_in, C_out), C-contiguous: the loops' layout."""
    c_out, c_in, kh, kw = weight.shape
    rows = np.permute_dims(weight, (2, 3, 1, 0)).reshape(kh, kw * c_in, c_out)
    return np.ascontiguousarray(rows)


def conv2d(
    x_nhwc: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: IntPair,
    padding: IntPair,
    out_hw: IntPair,
) -> tuple[np.ndarray, DirectInput]:
    """The (N, out_h, out_w, C_out) channels-last convolution of ``x_nhwc`` (any memory
    layout) and what the backward needs."""
    x_padded = pad_input(x_nhwc, padding)
    c_out = weight.shape[0]
    blocks = -(-c_out // 16) * 16  # filters padded by zero ones to whole blocks
    out = np.empty((x_nhwc.shape[0], *out_hw, blocks), dtype=x_nhwc.dtype)
    rows = window_rows(weight)
    biases = np.zeros(blocks, dtype=out.dtype)
    if bias is not None:
        biases[:c_out] = bias
    if blocks != c_out:
        rows = np.concatenate([rows, np.zeros((*rows.shape[:2], blocks - c_out), rows.dtype)], 2)
    with _compiled.loop_threads(_work(out, weight)) as loops:
        parts = max(1, min(loops.get_num_threads(), out.shape[0] * out.shape[1]))
        loops.conv_forward(x_padded, rows, biases, stride, parts, out)
    if blocks != c_out:
        out = np.ascontiguousarray(out[..., :c_out])
    return out, DirectInput(x_padded, weight)


def conv2d_backward(
    grad_nhwc: np.ndarray,
    saved: DirectInput,
    stride: IntPair,
    padding: IntPair,
    *,
    input_grad: bool,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Gradients of :func:`conv2d`: input (N, H, W, C_in) channels-last (None unless
    ``input_grad``) and weight (C_out, C_in, kH, kW)."""
    x_padded, weight = saved
    kh, kw = weight.shape[2:]
    grad = np.ascontiguousarray(grad_nhwc)
    grad_weight, grad_x = _weight_grad(x_padded, grad, weight, stride), None
    if input_grad:
        _, hp, wp, _ = x_padded.shape
        (ph, pw), h, w = padding, hp - 2 * padding[0], wp - 2 * padding[1]
        grad_padded = np.empty_like(x_padded)
        with _compiled.loop_threads(_work(grad, weight)) as loops:
            loops.conv_input_grad(grad, gradient_rows(weight), (kh, kw), stride, grad_padded)
        grad_x = grad_padded[:, ph : ph + h, pw : pw + w]
    return grad_x, grad_weight


def _weight_grad(
    x_padded: np.ndarray, grad: np.ndarray, weight: np.ndarray, stride: IntPair
) -> np.ndarray:
    """d(weight) by the loops. Their blocks take ROWS entries of a window row and 16 output
    channels at a time: a window row that does not fill whole blocks (a first layer's
    ``kW * C_in``, 5 or 15 floats) is read on into the next pixels, from a copy of the input
    with room after its end, and the sums past the row are dropped; output channels that
    do not fill a block have their gradient padded by zero columns."""
    from .numba_products import COLUMNS, ROWS

    c_out, c_in, kh, kw = weight.shape
    segment = kw * c_in
    rows = -(-segment // ROWS) * ROWS
    columns = -(-c_out // COLUMNS) * COLUMNS
    x_flat = x_padded.reshape(-1)
    if rows != segment:  # room for the last window's row to be read on
        x_flat = np.concatenate([x_flat, np.zeros(rows - segment, dtype=x_flat.dtype)])
    if columns != c_out:
        grad = np.concatenate([grad, np.zeros((*grad.shape[:3], columns - c_out), grad.dtype)], 3)
    sums = np.zeros((kh, rows, columns), dtype=np.float64)
    with _compiled.loop_threads(_work(grad, weight)) as loops:
        parts = max(1, min(loops.get_num_threads(), grad.shape[0] * grad.shape[1]))
        loops.conv_weight_grad(x_flat, tuple(x_padded.shape), grad, stride, parts, sums)
    sums = sums[:, :segment, :c_out].reshape(kh, kw, c_in, c_out)
    return np.ascontiguousarray(np.permute_dims(sums, (3, 2, 0, 1)), dtype=weight.dtype)


def _work(out: np.ndarray, weight: np.ndarray) -> int:
    """A pass's work in :func:`~xpnet.kernels._compiled.loop_threads`' units: its
    multiply-adds (each output element's ``C_in * kH * kW``) / 32."""
    return out.size * (weight.size // weight.shape[0]) // 32


def gradient_rows(weight: np.ndarray) -> np.ndarray:
    """(C_out, C_in, kH, kW) -> (C_out, K16): each filter as one row ordered (ky, kx, c),
    zeros after it up to a multiple of 16 columns (the micro-kernel's blocks)."""
    c_out, c_in, kh, kw = weight.shape
    k = kh * kw * c_in
    rows = np.zeros((c_out, -(-k // 16) * 16), dtype=weight.dtype)
    rows[:, :k] = np.permute_dims(weight, (0, 2, 3, 1)).reshape(c_out, k)
    return rows


__all__ = [
    "DirectInput",
    "applies",
    "beats_winograd",
    "conv2d",
    "conv2d_backward",
]
