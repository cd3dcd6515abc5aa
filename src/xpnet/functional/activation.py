"""Elementwise activations. Each backward takes the forward's *output*, so nothing else is kept."""

from __future__ import annotations

from typing import Any

from .._backend import fast_kernels
from .._validation import check_floating, namespace_of

Array = Any


def _floating_namespace(func: str, x: Array) -> Any:
    xp = namespace_of(func, x=x)
    check_floating(xp, x, "x", func)
    return xp


def relu(x: Array) -> Array:
    """``max(x, 0)`` elementwise (NaN stays NaN).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import relu
    >>> relu(xp.asarray([-1.0, 0.0, 2.0]))
    Array([0., 0., 2.], dtype=array_api_strict.float64)
    """
    xp = _floating_namespace("relu", x)
    return xp.maximum(x, xp.zeros_like(x))


def relu_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`relu` given its output ``out``: 0 where ``out <= 0``, else
    ``grad_out`` (a NaN output passes its gradient on, as in PyTorch)."""
    xp = namespace_of("relu_backward", grad_out=grad_out, out=out)
    fast = fast_kernels(grad_out, out)
    if fast is not None:
        return fast.relu_backward(grad_out, out)
    return xp.where(out <= 0, xp.zeros_like(grad_out), grad_out)


def sigmoid(x: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-x))``, stable for large ``|x|`` (no overflow).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import sigmoid
    >>> sigmoid(xp.asarray([-1000.0, 0.0, 1000.0]))
    Array([0. , 0.5, 1. ], dtype=array_api_strict.float64)
    """
    xp = _floating_namespace("sigmoid", x)
    fast = fast_kernels(x)
    if fast is not None:
        return fast.sigmoid(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    positive = 1.0 / (1.0 + e)
    return xp.where(x >= 0, positive, e * positive)


def sigmoid_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`sigmoid` given its output ``out``: ``g * y * (1 - y)``."""
    return grad_out * out * (1.0 - out)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import tanh
    >>> tanh(xp.asarray([0.0]))
    Array([0.], dtype=array_api_strict.float64)
    """
    xp = _floating_namespace("tanh", x)
    return xp.tanh(x)


def tanh_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`tanh` given its output ``out``: ``g * (1 - y**2)``."""
    return grad_out * (1.0 - out * out)
