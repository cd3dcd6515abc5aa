"""Loss functions: ``loss = crit.forward(output, target)`` then ``crit.backward()``."""

from __future__ import annotations

from typing import Any

from .. import functional as F

Array = Any


class CrossEntropyLoss:
    """Mean cross-entropy of logits (N, n_classes) against integer labels (N,).

    Parameters
    ----------
    check_range : bool
        Check every batch's labels lie in [0, n_classes) (one device-to-host read per call).
    """

    def __init__(self, *, check_range: bool = True) -> None:
        self.check_range = check_range
        self._saved: F.CrossEntropySaved | None = None

    def __call__(self, logits: Array, labels: Array) -> Array:
        return self.forward(logits, labels)

    def forward(self, logits: Array, labels: Array) -> Array:
        """Return the 0-d mean loss and keep what :meth:`backward` needs."""
        loss, self._saved = F.cross_entropy_forward(logits, labels, check_range=self.check_range)
        return loss

    def backward(self, grad_loss: Array | float = 1.0) -> Array:
        """d(loss)/d(logits) of the last forward."""
        if self._saved is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward")
        return F.cross_entropy_backward(self._saved, grad_loss)

    def __repr__(self) -> str:
        return "CrossEntropyLoss()"


class MSELoss:
    """Mean squared error over all elements."""

    def __init__(self) -> None:
        self._saved: tuple[Array, Array] | None = None

    def __call__(self, prediction: Array, target: Array) -> Array:
        return self.forward(prediction, target)

    def forward(self, prediction: Array, target: Array) -> Array:
        """Return the 0-d mean loss and keep what :meth:`backward` needs."""
        loss = F.mse_loss(prediction, target)
        self._saved = (prediction, target)
        return loss

    def backward(self, grad_loss: Array | float = 1.0) -> Array:
        """d(loss)/d(prediction) of the last forward."""
        if self._saved is None:
            raise RuntimeError("MSELoss.backward called before forward")
        return F.mse_loss_backward(*self._saved, grad_loss)

    def __repr__(self) -> str:
        return "MSELoss()"
