"""im2col and col2im, written once against the array API.

A k_h x k_w window slid over a padded image with stride s is, for each kernel offset
(i, j), ONE strided slice ``x[..., i : i + s*(out_h-1) + 1 : s, j : ...]`` holding that
offset's pixel for every output position at once. So im2col is k_h*k_w vectorised copies
(no Python loop over N, H or W) and col2im adds the k_h*k_w slices back.

The helpers take the caller's namespace as ``xp`` (keyword-only): the public op gets it
once from its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from array_api_compat import device

from .._typing import Array, IntPair, Namespace


def pad2d(x: Array, padding: IntPair, value: float = 0.0, *, xp: Namespace) -> Array:
    """Pad the last two axes of ``x`` by ``padding`` on both sides with ``value``."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    *lead, h, w = x.shape
    out = xp.full((*lead, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype, device=device(x))
    out[..., ph : ph + h, pw : pw + w] = x
    return out


def crop2d(x: Array, padding: IntPair) -> Array:
    """Undo :func:`pad2d`: drop ``padding`` from both sides of the last two axes."""
    ph, pw = padding
    h, w = x.shape[-2:]
    return x[..., ph : h - ph, pw : w - pw]


def window_slices(
    kernel: IntPair, stride: IntPair, out_hw: IntPair
) -> Iterator[tuple[slice, slice]]:
    """Yield the (rows, cols) slice pair of each kernel offset, row-major over (i, j)."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


def im2col(
    x_padded: Array, kernel: IntPair, stride: IntPair, out_hw: IntPair, *, axis: int, xp: Namespace
) -> Array:
    """Stack the k_h*k_w strided windows of ``x_padded`` along a new axis ``axis``.

    For ``x_padded`` of shape (A, B, H, W) the result has shape (A, B, out_h, out_w) with
    a k_h*k_w axis inserted at ``axis``.
    """
    views = [x_padded[..., rows, cols] for rows, cols in window_slices(kernel, stride, out_hw)]
    return xp.stack(views, axis=axis)


def col2im(
    contribution: Callable[[int], Array],
    like: Array,
    padded_shape: tuple[int, ...],
    kernel: IntPair,
    stride: IntPair,
    out_hw: IntPair,
    *,
    xp: Namespace,
) -> Array:
    """Sum window contributions back into an image of ``padded_shape`` (the adjoint of im2col).

    ``contribution(k)`` returns the gradient reaching kernel offset ``k`` (row-major over
    (i, j)) for every output position, shaped like one window slice; ``like`` gives the
    dtype and device of the result.
    """
    image = xp.zeros(padded_shape, dtype=like.dtype, device=device(like))
    for k, (rows, cols) in enumerate(window_slices(kernel, stride, out_hw)):
        image[..., rows, cols] += contribution(k)
    return image
