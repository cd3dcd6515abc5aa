"""Activation layers: thin holders around ``xpnet.functional`` that remember their output."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .module import Module

Array = Any


class _Activation(Module):
    """Applies ``_function`` and feeds its saved output to ``_gradient`` on the way back."""

    _function = staticmethod(F.relu)
    _gradient = staticmethod(F.relu_backward)

    def forward(self, x: Array) -> Array:
        self._out = self._function(x)
        return self._out

    def backward(self, grad_out: Array) -> Array:
        return self._gradient(grad_out, self._saved("_out"))


class ReLU(_Activation):
    """``max(x, 0)``."""


class Sigmoid(_Activation):
    """``1 / (1 + exp(-x))``, stable for large ``|x|``."""

    _function = staticmethod(F.sigmoid)
    _gradient = staticmethod(F.sigmoid_backward)


class Tanh(_Activation):
    """Hyperbolic tangent."""

    _function = staticmethod(F.tanh)
    _gradient = staticmethod(F.tanh_backward)


class Softmax(Module):
    """Softmax along ``axis`` (default the last)."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: Array) -> Array:
        self._out = F.softmax(x, axis=self.axis)
        return self._out

    def backward(self, grad_out: Array) -> Array:
        return F.softmax_backward(grad_out, self._saved("_out"), axis=self.axis)

    def config(self) -> dict[str, Any]:
        return {"axis": self.axis}
