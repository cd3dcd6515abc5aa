"""Learning-rate schedules: call ``step()`` once per optimizer step (or per epoch for StepLR)."""

from __future__ import annotations

import math

from .optimizer import Optimizer


class LRScheduler:
    """Sets ``optimizer.lr`` from ``lr_at(count)``; ``count`` starts at 0.

    Parameters
    ----------
    optimizer : Optimizer
        Whose ``lr`` the schedule sets (its current rate is the base rate).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.count = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, count: int) -> float:
        """The learning rate after ``count`` steps.

        Parameters
        ----------
        count : int
            Steps taken (0: the rate before the first).

        Returns
        -------
        float
            The rate.
        """
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and set the optimizer's learning rate."""
        self.count += 1
        self.optimizer.lr = self.lr_at(self.count)

    def state_dict(self) -> dict[str, float]:
        """The schedule's position, for checkpoints.

        Returns
        -------
        dict
            ``count`` and ``base_lr``.
        """
        return {"count": self.count, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore what :meth:`state_dict` returned and set the optimizer's rate.

        Parameters
        ----------
        state : dict
            ``count`` and ``base_lr``.
        """
        self.count, self.base_lr = int(state["count"]), float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.count)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps (``torch``'s StepLR).

    Parameters
    ----------
    optimizer : Optimizer
        Whose ``lr`` the schedule sets (its current rate is the base rate).
    step_size : int
        Steps between decays.
    gamma : float
        The factor of each decay.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be an int >= 1; got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, count: int) -> float:
        return self.base_lr * self.gamma ** (count // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the base rate to ``eta_min`` over ``t_max`` steps.

    Parameters
    ----------
    optimizer : Optimizer
        Whose ``lr`` the schedule sets (its current rate is the base rate).
    t_max : int
        Steps to reach ``eta_min``.
    eta_min : float
        The final rate.
    """

    def __init__(self, optimizer: Optimizer, t_max: int, eta_min: float = 0.0) -> None:
        if not isinstance(t_max, int) or t_max < 1:
            raise ValueError(f"CosineAnnealingLR: t_max must be an int >= 1; got {t_max!r}")
        self.t_max, self.eta_min = t_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, count: int) -> float:
        progress = min(count, self.t_max) / self.t_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2


class OneCycleLR(LRScheduler):
    """One-cycle policy (Smith 2018; ``torch``'s OneCycleLR, cosine annealing, two phases).

    The rate warms from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start``
    of ``total_steps``, then anneals to ``max_lr / (div_factor * final_div_factor)``.

    Parameters
    ----------
    optimizer : Optimizer
        Whose ``lr`` the schedule sets (its current rate is the base rate).
    max_lr : float
        The peak rate.
    total_steps : int
        Steps of the whole schedule (>= 2).
    pct_start : float
        Fraction of the steps spent warming up.
    div_factor : float
        The initial rate is ``max_lr / div_factor``.
    final_div_factor : float
        The final rate is the initial one divided by this.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int,
        *,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        if not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"OneCycleLR: total_steps must be an int >= 2; got {total_steps!r}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"OneCycleLR: pct_start must be in (0, 1); got {pct_start!r}")
        self.max_lr, self.total_steps = max_lr, total_steps
        self.initial_lr = max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.warm_steps = float(pct_start * total_steps) - 1
        super().__init__(optimizer)

    @staticmethod
    def _anneal(start: float, end: float, fraction: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)

    def lr_at(self, count: int) -> float:
        count = min(count, self.total_steps - 1)
        if count <= self.warm_steps:
            return self._anneal(self.initial_lr, self.max_lr, count / self.warm_steps)
        fraction = (count - self.warm_steps) / (self.total_steps - 1 - self.warm_steps)
        return self._anneal(self.max_lr, self.min_lr, fraction)
