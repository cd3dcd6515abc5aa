"""Small constant arrays built once per namespace, device and shape, and kept: the index
arrays of the window gathers, a class range, a zero column. On a device each would cost an
operation a step if rebuilt (see ``benchmarks/launches.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from array_api_compat import device

from .._backend import constants_eagerly
from .._typing import Array, Namespace

_CACHE: dict[tuple[Any, ...], Array] = {}
_CACHE_SIZE = 256


def cached(
    key: tuple[Any, ...], build: Callable[[], Array], *, xp: Namespace, like: Array
) -> Array:
    """``build()``'s array, made once for ``key`` on ``like``'s namespace and device (the
    cache is emptied when it holds ``_CACHE_SIZE`` arrays). Built eagerly even inside a
    ``jax.jit`` trace, so the kept array outlives it."""
    full_key = (xp.__name__, str(device(like)), *key)
    array = _CACHE.get(full_key)
    if array is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        with constants_eagerly(xp):
            array = _CACHE[full_key] = build()
    return array


def arange_like(n: int, *, xp: Namespace, like: Array) -> Array:
    """``arange(n)`` in ``like``'s integer dtype and device, made once."""
    dev = device(like)
    key = ("arange", n, str(like.dtype))
    return cached(key, lambda: xp.arange(n, dtype=like.dtype, device=dev), xp=xp, like=like)
