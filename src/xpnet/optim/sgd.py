"""Stochastic gradient descent with momentum, Nesterov and L2 weight decay (PyTorch's formulas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from array_api_compat import array_namespace, device

from .._typing import Array
from .._validation import finite_number
from ..nn.module import Parameter
from .flat import FlatParameters, FlatState
from .optimizer import Optimizer


class SGD(Optimizer):
    """``p -= lr * d`` where ``d`` is the gradient, or its momentum buffer.

    With ``g = grad + weight_decay * p`` and ``buf = momentum * buf + g`` (``buf = g`` on
    the first step), ``d = buf``, or ``d = g + momentum * buf`` with ``nesterov=True``,
    exactly as ``torch.optim.SGD`` (dampening 0).

    Parameters
    ----------
    params : iterable of Parameter
        What to update, e.g. ``model.parameters()``.
    lr : float
        The learning rate.
    momentum : float, optional
        Momentum factor (0: none).
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0``.
    weight_decay : float, optional
        L2 penalty added to the gradient.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = finite_number(momentum, "momentum", "SGD")
        self.weight_decay = finite_number(weight_decay, "weight_decay", "SGD")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0; got momentum=0")
        self.nesterov = nesterov

    def initial_state(self, param: Parameter) -> dict[str, Array]:
        if not self.momentum:
            return {}
        xp = array_namespace(param.data)
        zeros = xp.zeros(param.data.shape, dtype=param.data.dtype, device=device(param.data))
        return {"momentum_buffer": zeros}

    def _update(
        self, param: Parameter, grad: Array, state: dict[str, Any], scalars: dict[str, Any]
    ) -> None:
        if self.weight_decay:
            grad = grad + self.weight_decay * param.data
        if self.momentum:
            buf = state.get("momentum_buffer")
            buf = grad + 0.0 if buf is None else self.momentum * buf + grad
            state["momentum_buffer"] = buf
            grad = grad + self.momentum * buf if self.nesterov else buf
        param.data = param.data - scalars["lr"] * grad

    def _update_flat(
        self, flat: FlatParameters, grad: Array, state: FlatState, scalars: dict[str, Any]
    ) -> None:
        # _update's arithmetic, in the same order, on flat buffers updated in place
        data = flat.data
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                state.set("momentum_buffer", grad + 0.0)
                buf = state.buffers["momentum_buffer"]
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        data -= scalars["lr"] * grad
