"""Argument checks shared by the functional ops and the layers: each error names the
function, the argument, what was expected and what was received."""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace

from ._backend import BACKENDS, backend_of, is_array
from ._typing import Array, IntPair, Namespace


def pair(value: Any, name: str, func: str, *, minimum: int) -> IntPair:
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


def positive_int(value: Any, name: str, func: str) -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ValueError naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{func}: {name} must be a positive int; got {value!r}")
    return value


def finite_number(value: Any, name: str, func: str, *, minimum: float = 0.0) -> float:
    """``value`` as a float if it is a finite real number >= ``minimum``, else a ValueError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{func}: {name} must be a finite number >= {minimum:g}; got {value!r}")
    return float(value)


def flag(value: Any, name: str, func: str) -> bool:
    """``value`` as a bool if it is ``True`` or ``False`` (a NumPy bool too), else a
    TypeError: a string such as ``"False"`` or an array is truthy and would be taken as
    ``True`` without a word."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool", "bool_"):
        raise TypeError(f"{func}: {name} must be True or False; got {value!r}")
    return bool(value)


_KNOWN_TYPES: dict[type, tuple[str, Namespace]] = {}
"""Array types seen before, with their backend and namespace: for the libraries xpnet
knows, both follow from the type alone, so a layer call checks its arrays with a dict
lookup each (at batch 1, where the host's work is the time, this was a third of a
forward's)."""


def _backend_and_namespace(name: str, arr: Any, func: str) -> tuple[str, Namespace]:
    known = _KNOWN_TYPES.get(type(arr))
    if known is not None:
        return known
    if not is_array(arr):
        raise TypeError(
            f"{func}: {name} must be an array (numpy, cupy, torch, jax, array_api_strict, ...); "
            f"got {type(arr).__name__}"
        )
    found = (backend_of(arr), array_namespace(arr))
    if found[0] in BACKENDS:  # another library's namespace may depend on more than the type
        _KNOWN_TYPES[type(arr)] = found
    return found


def namespace_of(func: str, **arrays: Any) -> Namespace:
    """The one namespace shared by ``arrays`` (``None`` entries are skipped).

    Raises a ``TypeError`` naming the argument that is not an array, or the two arguments
    that come from different backends.
    """
    seen: dict[str, str] = {}
    xp = None
    for name, arr in arrays.items():
        if arr is not None:
            seen[name], xp = _backend_and_namespace(name, arr, func)
    if len(set(seen.values())) > 1:
        described = ", ".join(f"{n} is {b}" for n, b in seen.items())
        raise TypeError(f"{func}: arrays from different backends cannot be mixed: {described}")
    if xp is None:
        return array_namespace()  # no array at all: array-api-compat's own error
    return xp


def check_ndim(x: Array, name: str, func: str, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(
            f"{func}: {name} must be {ndim}-D {layout}; got shape {tuple(x.shape)} ({x.ndim}-D)"
        )


_REAL_FLOATING: dict[tuple[int, Any], bool] = {}
"""``xp.isdtype(dtype, "real floating")`` by (namespace, dtype): NumPy's takes about 2.5 us,
and every layer asks it once a call."""


def check_floating(x: Array, name: str, func: str, *, xp: Namespace) -> None:
    key = (id(xp), x.dtype)
    floating = _REAL_FLOATING.get(key)
    if floating is None:
        floating = _REAL_FLOATING[key] = bool(xp.isdtype(x.dtype, "real floating"))
    if not floating:
        raise TypeError(f"{func}: {name} must be a real floating array; got dtype {x.dtype}")


def check_same_dtype(func: str, **arrays: Any) -> None:
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        described = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise TypeError(f"{func}: dtypes must match: {described}")


def check_weight_and_bias(
    func: str, x: Array, weight: Array, bias: Array | None, *, xp: Namespace
) -> None:
    """Floating ``x`` of the weight's dtype, and a bias of shape (weight.shape[0],)."""
    check_floating(x, "x", func, xp=xp)
    check_same_dtype(func, x=x, weight=weight, bias=bias)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(
            f"{func}: bias must have shape ({weight.shape[0]},); got {tuple(bias.shape)}"
        )


def check_window_fits(func: str, hw: Any, kernel: Any, padding: IntPair) -> None:
    """Raise if the kernel is larger than the padded input."""
    padded = (hw[0] + 2 * padding[0], hw[1] + 2 * padding[1])
    if kernel[0] > padded[0] or kernel[1] > padded[1]:
        raise ValueError(
            f"{func}: kernel size {tuple(kernel)} is larger than the padded input {padded} "
            f"(input {tuple(hw)}, padding {padding})"
        )


def check_grad_shape(func: str, grad_out: Any, expected: tuple[int, ...]) -> None:
    """A ValueError unless ``grad_out`` has the forward result's shape ``expected``.

    The backward passes index ``grad_out`` by the saved shapes (the compiled loops of
    ``xpnet[numba]`` without bounds checks), so a wrong shape must stop here.
    """
    got = tuple(grad_out.shape)
    if got != tuple(expected):
        raise ValueError(
            f"{func}: grad_out must have the forward output's shape {tuple(expected)}; got {got}"
        )
