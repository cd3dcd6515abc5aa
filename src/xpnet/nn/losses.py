"""Loss functions: ``loss = crit(output, target)`` then ``crit.backward()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .. import functional as F
from .._typing import Array


class _Loss:
    """A loss around ``_op_forward(output, target)`` and ``_op_backward(grad_loss, saved)``."""

    _op_forward: ClassVar[Callable[..., Any]]
    _op_backward: ClassVar[Callable[..., Any]]

    def __init__(self) -> None:
        self._saved: Any = None

    def __call__(self, output: Array, target: Array) -> Array:
        return self.forward(output, target)

    def _forward_options(self) -> dict[str, Any]:
        return {}

    def forward(self, output: Array, target: Array) -> Array:
        """Return the 0-d mean loss and keep what :meth:`backward` needs."""
        loss, self._saved = type(self)._op_forward(output, target, **self._forward_options())
        return loss

    def backward(self, grad_loss: Array | float = 1.0) -> Array:
        """d(loss)/d(output) of the last forward, times ``grad_loss``."""
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return type(self)._op_backward(grad_loss, self._saved)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropyLoss(_Loss):
    """Mean cross-entropy of logits (N, n_classes) against integer labels (N,).

    Parameters
    ----------
    check_range : bool
        Check every batch's labels lie in [0, n_classes) (one device-to-host read per call).
    """

    _op_forward = staticmethod(F.cross_entropy_forward)
    _op_backward = staticmethod(F.cross_entropy_backward)

    def __init__(self, *, check_range: bool = True) -> None:
        super().__init__()
        self.check_range = check_range

    def _forward_options(self) -> dict[str, Any]:
        return {"check_range": self.check_range}

    def gradient(self, logits: Array, labels: Array) -> Array:
        """d(mean loss)/d(logits) without the loss's value (what a training step needs;
        ``fit`` computes the values later from the logits, at its read-back).

        Parameters
        ----------
        logits : array, shape (N, n_classes)
            The model's output.
        labels : array
            Integer labels (N,) or class probabilities (N, n_classes).

        Returns
        -------
        array, shape (N, n_classes)
            The gradient, to pass to the model's ``backward``.
        """
        return F.cross_entropy_gradient(logits, labels)

    @staticmethod
    def per_sample(logits: Array, labels: Array) -> Array:
        """Each sample's loss, shape (N,).

        Parameters
        ----------
        logits : array, shape (N, n_classes)
            The model's output.
        labels : array
            Integer labels (N,) or class probabilities (N, n_classes).

        Returns
        -------
        array, shape (N,)
            Each sample's cross-entropy.
        """
        return F.cross_entropy_per_sample(logits, labels)


class MSELoss(_Loss):
    """Mean squared error over all elements."""

    _op_forward = staticmethod(F.mse_loss_forward)
    _op_backward = staticmethod(F.mse_loss_backward)
