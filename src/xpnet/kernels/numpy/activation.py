"""Activations on NumPy: sigmoid and ReLU without a branch per element."""

from __future__ import annotations

import numpy as np

from .. import _compiled
from .._registry import register
from ._layout import BACKEND, same_layout, select, zero_where


@register(BACKEND, "sigmoid_forward")
def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generic stable formula, ``1 / (1 + exp(-|x|))`` and ``e * that`` for x < 0,
    with a branch-free select in place of ``np.where`` (bit-equal); saved: the output."""
    e = np.exp(-np.abs(x))
    positive = 1.0 / (1.0 + e)
    out = select(x >= 0, positive, e * positive)
    return out, out


@register(BACKEND, "relu_backward")
def relu_backward(grad_out: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The gradient where the output is positive (or NaN, as PyTorch), else 0."""
    if _compiled.available():  # one pass over flat memory, both arrays in out's layout
        grad_out = same_layout(grad_out, out)
        flat_grad, flat_out = _flat_view(grad_out), _flat_view(out)
        if flat_grad is not None and flat_out is not None:
            result = np.empty_like(out, dtype=grad_out.dtype)  # out's layout
            with _compiled.loop_threads(out.size) as loops:
                loops.relu_backward(flat_grad, flat_out, _flat_view(result))
            return result
    return zero_where(out <= 0, grad_out)


@register(BACKEND, "relu_forward")
def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``max(x, 0)`` against a scalar 0, in one pass (the generic code first allocates a
    zero array as large as ``x``); bit-equal, NaN kept. Saved: the output."""
    out = np.maximum(x, x.dtype.type(0))
    return out, out


def _flat_view(x: np.ndarray) -> np.ndarray | None:
    """``x``'s memory as a 1-D view if it is one contiguous block in some axis order."""
    order = np.argsort(x.strides)[::-1]
    dense = np.permute_dims(x, tuple(order))
    return dense.reshape(-1) if dense.flags.c_contiguous else None
