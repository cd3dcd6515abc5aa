"""Argument checks shared by the functional ops: each error names the function, the argument,
what was expected and what was received."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from array_api_compat import array_namespace

from ._backend import backend_of, is_array

IntPair = tuple[int, int]


def pair(value: int | tuple[int, int], name: str, func: str, *, minimum: int) -> IntPair:
    """Turn an int or an (h, w) pair into a checked pair of ints >= ``minimum``."""
    items = (value, value) if isinstance(value, int) else value
    ok = (
        isinstance(items, (tuple, list))
        and len(items) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    )
    if not ok:
        raise TypeError(f"{func}: {name} must be an int or a pair of ints (h, w); got {value!r}")
    h, w = int(items[0]), int(items[1])
    if h < minimum or w < minimum:
        raise ValueError(f"{func}: {name} must be >= {minimum}; got {value!r}")
    return h, w


def namespace_of(func: str, **arrays: Any) -> ModuleType:
    """The one namespace shared by ``arrays`` (``None`` entries are skipped).

    Raises a ``TypeError`` naming the argument that is not an array, or the two arguments
    that come from different backends.
    """
    seen: dict[str, str] = {}
    for name, arr in arrays.items():
        if arr is None:
            continue
        if not is_array(arr):
            raise TypeError(
                f"{func}: {name} must be an array (numpy, cupy, torch, array_api_strict, ...); "
                f"got {type(arr).__name__}"
            )
        seen[name] = backend_of(arr)
    if len(set(seen.values())) > 1:
        described = ", ".join(f"{n} is {b}" for n, b in seen.items())
        raise TypeError(f"{func}: arrays from different backends cannot be mixed: {described}")
    return array_namespace(*(a for a in arrays.values() if a is not None))


def check_ndim(x: Any, name: str, func: str, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(
            f"{func}: {name} must be {ndim}-D {layout}; got shape {tuple(x.shape)} ({x.ndim}-D)"
        )


def check_floating(xp: ModuleType, x: Any, name: str, func: str) -> None:
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{func}: {name} must be a real floating array; got dtype {x.dtype}")


def check_same_dtype(func: str, **arrays: Any) -> None:
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        described = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise TypeError(f"{func}: dtypes must match: {described}")
