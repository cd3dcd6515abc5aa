"""Elementwise activations. Each ``f_forward`` returns ``(out, out)``: the backward needs only
the output, so the output is what is saved."""

from __future__ import annotations

from .._typing import Array, Namespace
from .._validation import check_floating, check_grad_shape, namespace_of
from ..kernels import kernel_for


def _floating_namespace(func: str, x: Array) -> Namespace:
    xp = namespace_of(func, x=x)
    check_floating(x, "x", func, xp=xp)
    return xp


def relu_forward(x: Array) -> tuple[Array, Array]:
    """:func:`relu` and what its backward needs (the output).

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    out : array
        ``relu(x)``: the input's shape, dtype, backend and device.
    saved : array
        The output again: what :func:`relu_backward` takes.
    """
    xp = _floating_namespace("relu", x)
    kernel = kernel_for("relu_forward", x)
    if kernel is not None:
        return kernel(x)
    out = xp.clip(x, min=0.0)  # one operation (NaN stays NaN)
    return out, out


def relu(x: Array) -> Array:
    """``max(x, 0)`` elementwise (NaN stays NaN).

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    array
        The input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import relu
    >>> relu(xp.asarray([-1.0, 0.0, 2.0]))
    Array([0., 0., 2.], dtype=array_api_strict.float64)
    """
    return relu_forward(x)[0]


def relu_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`relu` given its output ``out``: 0 where ``out <= 0``, else
    ``grad_out`` (a NaN output passes its gradient on, as in PyTorch).

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    out : array
        The forward's output (what the ``_forward`` function saved).

    Returns
    -------
    array
        d(loss)/d(x), the input's shape.
    """
    xp = namespace_of("relu_backward", grad_out=grad_out, out=out)
    check_grad_shape("relu_backward", grad_out, tuple(out.shape))
    kernel = kernel_for("relu_backward", grad_out, out)
    if kernel is not None:
        return kernel(grad_out, out)
    return xp.where(out <= 0, 0.0, grad_out)


def sigmoid_forward(x: Array) -> tuple[Array, Array]:
    """:func:`sigmoid` and what its backward needs (the output).

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    out : array
        ``sigmoid(x)``: the input's shape, dtype, backend and device.
    saved : array
        The output again: what :func:`sigmoid_backward` takes.
    """
    xp = _floating_namespace("sigmoid", x)
    kernel = kernel_for("sigmoid_forward", x)
    if kernel is not None:
        return kernel(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    positive = 1.0 / (1.0 + e)
    out = xp.where(x >= 0, positive, e * positive)
    return out, out


def sigmoid(x: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-x))``, stable for large ``|x|`` (no overflow).

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    array
        Values in [0, 1]; the input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import sigmoid
    >>> sigmoid(xp.asarray([-1000.0, 0.0, 1000.0]))
    Array([0. , 0.5, 1. ], dtype=array_api_strict.float64)
    """
    return sigmoid_forward(x)[0]


def sigmoid_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`sigmoid` given its output ``out``: ``g * y * (1 - y)``.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    out : array
        The forward's output (what the ``_forward`` function saved).

    Returns
    -------
    array
        d(loss)/d(x), the input's shape.
    """
    return grad_out * out * (1.0 - out)


def tanh_forward(x: Array) -> tuple[Array, Array]:
    """:func:`tanh` and what its backward needs (the output).

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    out : array
        ``tanh(x)``: the input's shape, dtype, backend and device.
    saved : array
        The output again: what :func:`tanh_backward` takes.
    """
    out = _floating_namespace("tanh", x).tanh(x)
    return out, out


def tanh(x: Array) -> Array:
    """Hyperbolic tangent.

    Parameters
    ----------
    x : array
        Real floating-point input of any shape.

    Returns
    -------
    array
        Values in [-1, 1]; the input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import tanh
    >>> tanh(xp.asarray([0.0]))
    Array([0.], dtype=array_api_strict.float64)
    """
    return tanh_forward(x)[0]


def tanh_backward(grad_out: Array, out: Array) -> Array:
    """Gradient of :func:`tanh` given its output ``out``: ``g * (1 - y**2)``.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    out : array
        The forward's output (what the ``_forward`` function saved).

    Returns
    -------
    array
        d(loss)/d(x), the input's shape.
    """
    return grad_out * (1.0 - out * out)
