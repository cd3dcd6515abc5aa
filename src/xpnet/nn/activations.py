"""Activation layers: thin holders around ``xpnet.functional`` that remember their output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .. import functional as F
from .._typing import Array
from .module import Module


class _Activation(Module):
    """Applies ``_op_forward`` and feeds its saved output to ``_op_backward`` on the way
    back; the subclass names the op."""

    _op_forward: ClassVar[Callable[..., Any]]
    _op_backward: ClassVar[Callable[..., Any]]

    def forward(self, x: Array) -> Array:
        out, self._saved = type(self)._op_forward(x)
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        return type(self)._op_backward(grad_out, self._take_saved())


_APPLIED_BEFORE = object()
"""A ReLU's saved state when the layer before it applied it (:meth:`ReLU.applied_before`)."""


class ReLU(_Activation):
    """``max(x, 0)``."""

    _op_forward = staticmethod(F.relu_forward)
    _op_backward = staticmethod(F.relu_backward)

    def applied_before(self) -> None:
        """Record that the layer before applied this ReLU in its own op (as
        :meth:`xpnet.nn.BatchNorm2d.forward_relu`, which :class:`xpnet.nn.Sequential`
        calls instead of the two layers' forwards): the next :meth:`backward` passes the
        gradient on unchanged, since that layer's backward takes the ReLU's too."""
        self._saved = _APPLIED_BEFORE

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        if self._take_saved() is _APPLIED_BEFORE:
            return grad_out
        return super().backward(grad_out, input_grad=input_grad)


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``, stable for large ``|x|``."""

    _op_forward = staticmethod(F.sigmoid_forward)
    _op_backward = staticmethod(F.sigmoid_backward)


class Tanh(_Activation):
    """Hyperbolic tangent."""

    _op_forward = staticmethod(F.tanh_forward)
    _op_backward = staticmethod(F.tanh_backward)


class Softmax(Module):
    """Softmax along ``axis`` (default the last).

    Parameters
    ----------
    axis : int
        The axis along which the output sums to 1.
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"Softmax: axis must be an int; got {axis!r}")
        self.axis = axis

    def forward(self, x: Array) -> Array:
        out, self._saved = F.softmax_forward(x, axis=self.axis)
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        return F.softmax_backward(grad_out, self._take_saved(), axis=self.axis)

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis}
