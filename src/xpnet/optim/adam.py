"""Adam and AdamW (PyTorch's formulas, bias-corrected, no amsgrad)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from array_api_compat import array_namespace, device

from .._typing import Array
from .._validation import finite_number
from ..nn.module import Parameter
from .flat import FlatParameters, FlatState
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (as ``torch.optim.Adam``).

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g**2``, then
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.

    Parameters
    ----------
    params : iterable of Parameter
        What to update, e.g. ``model.parameters()``.
    lr : float
        The learning rate.
    betas : (float, float)
        Decay rates of the moments, each in [0, 1).
    eps : float
        Added to the denominator.
    weight_decay : float, optional
        Default 0 (``AdamW``: 0.01).
    """

    decoupled = False
    default_weight_decay = 0.0

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
    ) -> None:
        super().__init__(params, lr)
        name = type(self).__name__
        self.eps = finite_number(eps, "eps", name)
        if weight_decay is None:
            weight_decay = self.default_weight_decay
        self.weight_decay = finite_number(weight_decay, "weight_decay", name)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1); got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))

    def step_scalars(self) -> dict[str, Any]:
        beta1, beta2 = self.betas
        t = self.step_count
        return {
            "decay": 1.0 - self.lr * self.weight_decay,  # AdamW's
            "step_size": self.lr / (1.0 - beta1**t),
            "bias2_sqrt": math.sqrt(1.0 - beta2**t),
        }

    def initial_state(self, param: Parameter) -> dict[str, Array]:
        xp = array_namespace(param.data)
        shape, dtype, dev = param.data.shape, param.data.dtype, device(param.data)
        return {key: xp.zeros(shape, dtype=dtype, device=dev) for key in ("exp_avg", "exp_avg_sq")}

    def _update(
        self, param: Parameter, grad: Array, state: dict[str, Any], scalars: dict[str, Any]
    ) -> None:
        xp = array_namespace(param.data)
        beta1, beta2 = self.betas
        data = param.data
        if self.weight_decay and self.decoupled:
            data = data * scalars["decay"]
        elif self.weight_decay:
            grad = grad + self.weight_decay * data
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        m = (1.0 - beta1) * grad if m is None else m + (1.0 - beta1) * (grad - m)
        v = (1.0 - beta2) * grad * grad if v is None else beta2 * v + (1.0 - beta2) * grad * grad
        state["exp_avg"], state["exp_avg_sq"] = m, v
        denom = xp.sqrt(v) / scalars["bias2_sqrt"] + self.eps
        param.data = data - scalars["step_size"] * (m / denom)

    def _update_flat(
        self, flat: FlatParameters, grad: Array, state: FlatState, scalars: dict[str, Any]
    ) -> None:
        # _update's arithmetic, in the same order, on flat buffers updated in place
        xp = flat.xp
        beta1, beta2 = self.betas
        data = flat.data
        if self.weight_decay and self.decoupled:
            data *= scalars["decay"]
        elif self.weight_decay:
            grad = grad + self.weight_decay * data
        m, v = state.get("exp_avg"), state.get("exp_avg_sq")
        if m is None or v is None:
            state.set("exp_avg", (1.0 - beta1) * grad)
            state.set("exp_avg_sq", (1.0 - beta2) * grad * grad)
            m, v = state.buffers["exp_avg"], state.buffers["exp_avg_sq"]
        else:
            m += (1.0 - beta1) * (grad - m)
            v *= beta2
            v += (1.0 - beta2) * grad * grad
        denom = xp.sqrt(v) / scalars["bias2_sqrt"] + self.eps
        data -= scalars["step_size"] * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the step),
    as ``torch.optim.AdamW`` (whose default ``weight_decay`` is 0.01).

    Parameters
    ----------
    params : iterable of Parameter
        What to update, e.g. ``model.parameters()``.
    lr : float
        The learning rate.
    betas : (float, float)
        Decay rates of the moments, each in [0, 1).
    eps : float
        Added to the denominator.
    weight_decay : float, optional
        Default 0.01.
    """

    decoupled = True
    default_weight_decay = 1e-2
