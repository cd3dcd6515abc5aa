"""Batch normalisation of (N, C, H, W) in channels-last memory on NumPy (and the optional
compiled loops), with the ReLU that follows it fused in."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..._saved import BatchNormSaved
from .. import _compiled
from .._registry import register
from ._layout import BACKEND, as_nchw, channels_last
from .activation import relu_backward


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
    with _compiled.loop_threads(wide.size):
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
    with _compiled.loop_threads(grad_wide.size):
        tiled = [np.tile(v, r) for v in coefficients]
        loops.affine_pair(grad_wide, x_hat_wide, relu_out, *tiled, grad_x)
    n, h, w = nhw
    return as_nchw(grad_x.reshape(n, h, w, c)), grad_weight if has_weight else None, grad_bias
