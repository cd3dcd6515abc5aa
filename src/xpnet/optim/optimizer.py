"""The base class every optimizer shares: parameter list, learning rate, per-parameter state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from array_api_compat import device

from .._backend import asarray, backend_of, to_numpy
from .._typing import Array
from .._validation import finite_number
from ..nn.module import Parameter


class Optimizer:
    """Holds ``params``, the learning rate ``lr`` and a state dict per parameter.

    The state arrays (momentum buffers, Adam moments) live on the parameters' backend.
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: params is an empty list")
        for index, param in enumerate(self.params):
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: params[{index}] must be an xpnet Parameter; "
                    f"got {type(param).__name__}"
                )
        self.lr = finite_number(lr, "lr", type(self).__name__)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (layers overwrite them on ``backward`` anyway)."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        self.step_count += 1
        for param, state in zip(self.params, self.state):
            if param.grad is not None:
                self._update(param, param.grad, state)

    def _update(self, param: Parameter, grad: Array, state: dict[str, Any]) -> None:
        """Update ``param.data`` from its gradient ``grad`` and its ``state``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``lr``, the step count and every state array (as NumPy), for checkpoints."""
        arrays = {
            f"{index}.{key}": to_numpy(value).copy()
            for index, state in enumerate(self.state)
            for key, value in state.items()
        }
        return {"lr": self.lr, "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto the parameters' backend and device."""
        self.lr = float(state_dict["lr"])
        self.step_count = int(state_dict["step_count"])
        self.state = [{} for _ in self.params]
        for name, value in state_dict["state"].items():
            index, key = name.split(".", 1)
            param = self.params[int(index)]
            self.state[int(index)][key] = asarray(
                value, backend=backend_of(param.data), device=device(param.data)
            )
