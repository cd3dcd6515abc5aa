"""The training recipe the CLI and the scikit-learn estimator share: which optimizer a name
means, and its default peak learning rate."""

from __future__ import annotations

from collections.abc import Iterable

from ..nn.module import Parameter
from .adam import Adam
from .optimizer import Optimizer
from .sgd import SGD

DEFAULT_LR: dict[str, float] = {"adam": 5e-3, "sgd": 0.05}
"""Peak learning rate of each optimizer name (with a one-cycle schedule, MNIST-tuned)."""


def make_optimizer(name: str, params: Iterable[Parameter], lr: float) -> Optimizer:
    """``"adam"``: Adam; ``"sgd"``: SGD with Nesterov momentum 0.9.

    Parameters
    ----------
    name : {"adam", "sgd"}
        The optimizer.
    params : iterable of Parameter
        What it updates.
    lr : float
        Its learning rate.

    Returns
    -------
    Optimizer
        The optimizer.

    Examples
    --------
    >>> from xpnet import nn, optim
    >>> opt = optim.make_optimizer("sgd", nn.Linear(2, 1, backend="numpy").parameters(), 0.1)
    >>> type(opt).__name__, opt.lr, opt.momentum, opt.nesterov
    ('SGD', 0.1, 0.9, True)
    """
    if name == "adam":
        return Adam(params, lr=lr)
    if name == "sgd":
        return SGD(params, lr=lr, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be one of {', '.join(DEFAULT_LR)}; got {name!r}")
