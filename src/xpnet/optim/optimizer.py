"""The base class every optimizer shares: parameter list, learning rate, per-parameter state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from array_api_compat import device

from .._backend import asarray, backend_of, to_numpy
from .._typing import Array
from .._validation import finite_number
from ..nn.module import Parameter
from .flat import FlatParameters, FlatState


class Optimizer:
    """Holds ``params``, the learning rate ``lr`` and a state dict per parameter.

    The state arrays (momentum buffers, Adam moments) live on the parameters' backend.
    Where the backend allows (:mod:`xpnet.optim.flat`), the parameters become views of one
    flat buffer on the first step and every update is a few whole-buffer operations;
    ``flat = False`` updates one parameter at a time instead, with bit-identical results.

    Parameters
    ----------
    params : iterable of Parameter
        What to update, e.g. ``model.parameters()``.
    lr : float
        The learning rate.
    """

    flat: bool = True
    """Update all parameters through one flat buffer where possible (see above)."""

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
        self._flat: FlatParameters | None = None
        self._flat_state: FlatState | None = None
        self._flat_possible: bool | None = None

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (layers overwrite them on ``backward`` anyway)."""
        for param in self.params:
            param.grad = None

    def flat_parameters(self) -> FlatParameters | None:
        """The flat buffer of all parameters (packed on first use), or ``None`` where this
        optimizer updates them one at a time.

        Returns
        -------
        FlatParameters or None
            The buffer and its views.
        """
        if not self.flat:
            return None
        if self._flat is None:
            if self._flat_possible is None:
                self._flat_possible = FlatParameters.possible(self.params)
            if not self._flat_possible:
                return None
            self._flat = FlatParameters(self.params)
            self._flat_state = FlatState(self._flat, self.state)
        else:
            self._flat.ensure_packed()
        return self._flat

    def step(self, flat_grad: Array | None = None) -> None:
        """Update every parameter that has a gradient.

        ``flat_grad``: all gradients as one flat buffer (:meth:`FlatParameters.gradient`,
        e.g. after a data-parallel reduction) to use instead of the parameters' ``.grad``.

        Parameters
        ----------
        flat_grad : array, optional
            The gradients as one flat buffer.
        """
        self.step_count += 1
        scalars = self.step_scalars()
        flat = self.flat_parameters()
        if flat is not None:
            grad = flat.gradient() if flat_grad is None else flat_grad
            if grad is not None:
                assert self._flat_state is not None
                self._update_flat(flat, grad, self._flat_state, scalars)
                return
        if flat_grad is not None:
            raise ValueError(f"{type(self).__name__}.step: flat_grad needs the flat path")
        self.update_each(scalars)

    def update_each(self, scalars: dict[str, Any]) -> None:
        """Update every parameter that has a gradient, one at a time, with this step's
        ``scalars`` (:meth:`step_scalars`); a compiled step calls it with traced ones.

        Parameters
        ----------
        scalars : dict
            What :meth:`step_scalars` returns.
        """
        for param, state in zip(self.params, self.state):
            if param.grad is not None:
                self._update(param, param.grad, state, scalars)

    def step_scalars(self) -> dict[str, Any]:
        """The numbers this step's update uses that change from step to step (the
        learning rate, bias corrections), computed on the host as Python floats for step
        ``step_count``. A compiled step passes them in as arguments, so one trace serves
        every step; the other hyperparameters are constants of the trace.

        Returns
        -------
        dict of str to float
            At least ``lr``.
        """
        return {"lr": self.lr}

    def initial_state(self, param: Parameter) -> dict[str, Array]:
        """The state a parameter starts from, as arrays, where the first step's update
        equals the update from that state (zeros, for SGD's momentum and Adam's moments):
        a compiled step starts from it, so its first step traces like every other.

        Parameters
        ----------
        param : Parameter
            One of the optimizer's parameters.

        Returns
        -------
        dict of str to array
            Empty for an optimizer without state.
        """
        return {}

    def _update_flat(
        self, flat: FlatParameters, grad: Array, state: FlatState, scalars: dict[str, Any]
    ) -> None:
        """Update every parameter at once: ``flat.data`` in place, from the flat gradient
        ``grad`` and the flat ``state`` (the same formulas as :meth:`_update`)."""
        raise NotImplementedError

    def _update(
        self, param: Parameter, grad: Array, state: dict[str, Any], scalars: dict[str, Any]
    ) -> None:
        """Update ``param.data`` from its gradient ``grad`` and its ``state``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``lr``, the step count and every state array (as NumPy), for checkpoints.

        Returns
        -------
        dict
            ``lr``, ``step_count`` and ``state`` (name -> NumPy array).
        """
        arrays = {
            f"{index}.{key}": to_numpy(value).copy()
            for index, state in enumerate(self.state)
            for key, value in state.items()
        }
        return {"lr": self.lr, "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto the parameters' backend and device.

        Parameters
        ----------
        state_dict : dict
            What :meth:`state_dict` returned (possibly from another backend).
        """
        self.lr = float(state_dict["lr"])
        self.step_count = int(state_dict["step_count"])
        for entry in self.state:  # the same dicts: the flat state sees them replaced
            entry.clear()
        for name, value in state_dict["state"].items():
            index, key = name.split(".", 1)
            param = self.params[int(index)]
            self.state[int(index)][key] = asarray(
                value, backend=backend_of(param.data), device=device(param.data)
            )
