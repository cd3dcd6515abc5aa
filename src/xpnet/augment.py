"""Data augmentation on the device: batches are transformed where they already are.

Random numbers come from :class:`xpnet._backend.DeviceRandom` (on the images' device) and
the transform is array-API indexing, so no batch goes back to the host. Seeded: the same
seed gives the same shifts again (NumPy and array_api_strict draw the same numbers; torch
and CuPy draw from their own generators, so their shifts differ from NumPy's).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device

from ._backend import DeviceRandom, index_dtype
from ._typing import Array
from ._validation import check_floating, check_ndim
from .functional._windows import pad2d


class RandomShift:
    """Shift each image by its own random (dy, dx), each in ``[-max_shift, max_shift]``,
    filling with zeros: pad by ``max_shift``, then crop at a random offset.

    Parameters
    ----------
    max_shift : int
        Largest shift in pixels (MNIST: 2 is common).
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.augment import RandomShift
    >>> images = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    >>> RandomShift(1, seed=0)(images).shape
    (2, 1, 4, 4)
    """

    def __init__(self, max_shift: int = 2, *, seed: int | None = None) -> None:
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be an int >= 0; got {max_shift!r}")
        self.max_shift = max_shift
        self.seed = seed
        self._random = DeviceRandom(seed)

    def offsets(self, images: Array) -> tuple[Array, Array]:
        """The crop offsets in the padded images, (N,) each in [0, 2 * max_shift].

        Parameters
        ----------
        images : array
            The batch (N, C, H, W); the offsets are drawn on its device.

        Returns
        -------
        dy, dx : array
            Integer offsets (N,) each.
        """
        xp = array_namespace(images)
        n = images.shape[0]
        draws = self._random.uniform((2, n), like=images)
        span = 2 * self.max_shift + 1
        values = xp.astype(xp.floor(draws * span), index_dtype(xp))
        values = xp.clip(values, 0, span - 1)  # a draw of 1 - ulp rounding up in float32
        return values[0, ...], values[1, ...]

    def __call__(self, images: Array) -> Array:
        check_ndim(images, "images", "RandomShift", 4, "(N, C, H, W)")
        xp = array_namespace(images)
        check_floating(images, "images", "RandomShift", xp=xp)
        s = self.max_shift
        if s == 0:
            return images
        n, c, h, w = images.shape
        padded = pad2d(images, (s, s), xp=xp)
        hp, wp = h + 2 * s, w + 2 * s
        top, left = self.offsets(images)
        dev, integer = device(images), index_dtype(xp)
        # index of output pixel (n, c, i, j) in the flattened padded batch:
        # ((n*C + c)*Hp + i + top[n])*Wp + j + left[n]
        planes = xp.reshape(xp.arange(n * c, dtype=integer, device=dev), (n, c, 1, 1)) * (hp * wp)
        rows = xp.arange(h, dtype=integer, device=dev)[None, :] + top[:, None]
        cols = xp.arange(w, dtype=integer, device=dev)[None, :] + left[:, None]
        index = planes + xp.reshape(rows, (n, 1, h, 1)) * wp + xp.reshape(cols, (n, 1, 1, w))
        flat = xp.take(xp.reshape(padded, (-1,)), xp.reshape(index, (-1,)), axis=0)
        return xp.reshape(flat, (n, c, h, w))

    def config(self) -> dict[str, Any]:
        return {"max_shift": self.max_shift, "seed": self.seed}

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, seed={self.seed})"


__all__ = ["RandomShift"]
