"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import xpnet


def on(backend_xp, array: np.ndarray, dtype: str = "float64"):
    """Copy a NumPy array to the backend of namespace ``backend_xp`` with ``dtype``."""
    return backend_xp.asarray(np.asarray(array, dtype=dtype))


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central finite differences of scalar ``f`` at every element of float64 ``x``."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def as_np(x) -> np.ndarray:
    return xpnet.to_numpy(x)
