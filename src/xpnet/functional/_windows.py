"""im2col and col2im as ONE gather each, written once against the array API.

A k_h x k_w window slid over a padded image with stride s reads, for kernel offset
(i, j) and output position (oy, ox), the pixel ``(i + s*oy, j + s*ox)``. With the image's
pixels flattened to one axis, every window of every image is ONE ``take`` along that
axis with an index array of those flat positions, built once per geometry and device and
cached (:func:`window_index`). So im2col is a single device operation, whatever the
kernel size: on a GPU, where each operation costs the host ~5-10 us, that is what
matters (a slice copy per kernel offset was k_h*k_w operations).

col2im, its adjoint, sums for each pixel the values that the windows covering it
received. The array API has no scatter-add, so it is a gather too: for pixel p and offset
k the one output position whose window put offset k on p (:func:`covering_index`), or a
zero appended after the last value where none did; then a sum over the k_h*k_w offsets.

The helpers take the caller's namespace as ``xp`` (keyword-only): the public op gets it
once from its inputs.
"""

from __future__ import annotations

import array_api_extra as xpx
from array_api_compat import device

from .._backend import take_nonnegative
from .._typing import Array, IntPair, Namespace
from ._cache import arange_like, cached


def pad2d(x: Array, padding: IntPair, value: float = 0.0, *, xp: Namespace) -> Array:
    """Pad the last two axes of ``x`` by ``padding`` on both sides with ``value``.

    The copy into the middle goes through array-api-extra's ``at``: in place where the
    library allows it (NumPy, CuPy, torch), a new array where arrays are immutable (JAX).
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    *lead, h, w = x.shape
    out = xp.full((*lead, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype, device=device(x))
    return xpx.at(out, (..., slice(ph, ph + h), slice(pw, pw + w))).set(x, xp=xp)


def crop2d(x: Array, padding: IntPair) -> Array:
    """Undo :func:`pad2d`: drop ``padding`` from both sides of the last two axes."""
    ph, pw = padding
    h, w = x.shape[-2:]
    return x[..., ph : h - ph, pw : w - pw]


def window_offsets(kk: int, *, xp: Namespace, like: Array) -> Array:
    """``arange(kk)`` shaped (kk, 1) to compare with argmax; on ``like``'s device, cached."""
    return xp.reshape(arange_like(kk, xp=xp, like=like), (kk, 1))


def window_index(
    padded_hw: IntPair,
    kernel: IntPair,
    stride: IntPair,
    out_hw: IntPair,
    *,
    xp: Namespace,
    like: Array,
) -> Array:
    """Flat positions in a ``padded_hw`` image of every window pixel, shape
    ``(k_h*k_w*out_h*out_w,)``, ordered (i, j, oy, ox); on ``like``'s device, cached."""
    dev = device(like)

    def build() -> Array:
        (kh, kw), (sh, sw), (oh, ow), width = kernel, stride, out_hw, padded_hw[1]
        i = xp.reshape(xp.arange(kh, device=dev), (kh, 1, 1, 1))
        j = xp.reshape(xp.arange(kw, device=dev), (1, kw, 1, 1))
        oy = xp.reshape(xp.arange(oh, device=dev), (1, 1, oh, 1))
        ox = xp.reshape(xp.arange(ow, device=dev), (1, 1, 1, ow))
        return xp.reshape((i + sh * oy) * width + (j + sw * ox), (-1,))

    return cached(("window", padded_hw, kernel, stride, out_hw), build, xp=xp, like=like)


def covering_index(
    image_hw: IntPair,
    padding: IntPair,
    kernel: IntPair,
    stride: IntPair,
    out_hw: IntPair,
    *,
    xp: Namespace,
    like: Array,
) -> Array:
    """For each pixel p of the unpadded ``image_hw`` image and each kernel offset k, the
    position ``k*out_h*out_w + o`` of the window value that offset k of output o put on
    p, or ``k_h*k_w*out_h*out_w`` (a zero appended after the values) where no window
    did. Shape ``(h*w*k_h*k_w,)``, ordered (y, x, i, j); on ``like``'s device, cached."""
    dev = device(like)

    def build() -> Array:
        (h, w), (ph, pw), (kh, kw), (sh, sw), (oh, ow) = image_hw, padding, kernel, stride, out_hw
        y = xp.reshape(xp.arange(h, device=dev) + ph, (h, 1, 1, 1))  # padded coordinates
        x = xp.reshape(xp.arange(w, device=dev) + pw, (1, w, 1, 1))
        i = xp.reshape(xp.arange(kh, device=dev), (1, 1, kh, 1))
        j = xp.reshape(xp.arange(kw, device=dev), (1, 1, 1, kw))
        dy, dx = y - i, x - j  # window origin * stride, if a window starts there
        oy, ox = dy // sh, dx // sw
        hit = (dy >= 0) & (dy % sh == 0) & (oy < oh) & (dx >= 0) & (dx % sw == 0) & (ox < ow)
        values = (i * kw + j) * (oh * ow) + oy * ow + ox
        missing = xp.full(values.shape, kh * kw * oh * ow, dtype=values.dtype, device=dev)
        return xp.reshape(xp.where(hit, values, missing), (-1,))

    key = ("covering", image_hw, padding, kernel, stride, out_hw)
    return cached(key, build, xp=xp, like=like)


def im2col(
    x_padded: Array, kernel: IntPair, stride: IntPair, out_hw: IntPair, *, xp: Namespace
) -> Array:
    """Every window of ``x_padded`` (A, B, H, W) in one gather: shape
    (A, B, k_h*k_w, out_h*out_w), offsets (i, j) row-major."""
    a, b, h, w = x_padded.shape
    index = window_index((h, w), kernel, stride, out_hw, xp=xp, like=x_padded)
    flat = take_nonnegative(xp, xp.reshape(x_padded, (a * b, h * w)), index, axis=1)
    return xp.reshape(flat, (a, b, kernel[0] * kernel[1], out_hw[0] * out_hw[1]))


def col2im(
    values: Array,
    image_shape: tuple[int, ...],
    padding: IntPair,
    kernel: IntPair,
    stride: IntPair,
    out_hw: IntPair,
    *,
    xp: Namespace,
) -> Array:
    """Sum window values back onto the pixels they came from (the adjoint of im2col).

    ``values`` has shape (A, B, k_h*k_w, out_h*out_w), as :func:`im2col` gives; the
    result has ``image_shape`` (A, B, h, w), the unpadded image (padding's pixels, which
    no one reads, are dropped)."""
    a, b, h, w = image_shape
    kk = kernel[0] * kernel[1]
    index = covering_index((h, w), padding, kernel, stride, out_hw, xp=xp, like=values)
    flat = xp.reshape(values, (a * b, kk * out_hw[0] * out_hw[1]))
    tiles = padding == (0, 0) and stride == kernel
    if tiles and (out_hw[0] * kernel[0], out_hw[1] * kernel[1]) == (h, w):
        # windows that tile the image: every pixel is in exactly one, so col2im is a
        # permutation of the values (one gather, nothing to add)
        single = cached(
            ("tiles", (h, w), kernel),
            lambda: xp.min(xp.reshape(index, (h * w, kk)), axis=1),
            xp=xp,
            like=values,
        )
        return xp.reshape(take_nonnegative(xp, flat, single, axis=1), image_shape)
    dev = device(values)  # the zero column each gather reads where no window covers
    zero = cached(
        ("zeros", a * b, str(values.dtype)),
        lambda: xp.zeros((a * b, 1), dtype=values.dtype, device=dev),
        xp=xp,
        like=values,
    )
    gathered = take_nonnegative(xp, xp.concat((flat, zero), axis=1), index, axis=1)  # (A*B, h*w*kk)
    return xp.reshape(xp.sum(xp.reshape(gathered, (a * b, h * w, kk)), axis=2), image_shape)
