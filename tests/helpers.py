"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import xpnet


def on(backend_xp, array: np.ndarray, dtype: str = "float64"):
    """Copy a NumPy array to the backend of namespace ``backend_xp`` with ``dtype``."""
    return backend_xp.asarray(np.asarray(array, dtype=dtype))


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """Central finite differences of scalar ``f`` at every element of float64 ``x``."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def as_np(x) -> np.ndarray:
    return xpnet.to_numpy(x)


def one_block_resnet(channels: int, *, seed: int, backend: str, dropout: float | None = None):
    """mnist_resnet's pieces once each, small enough to compile in seconds: conv, batch
    norm fused with ReLU, max-pool after a ReLU, a residual block with batch norm, global
    average pooling, (dropout,) dense to 10 classes."""
    from xpnet import nn

    rng = np.random.default_rng(seed)

    def conv(c_in: int, c_out: int) -> nn.Conv2d:
        return nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, rng=rng, backend=backend)

    def norm() -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, backend=backend)

    block = nn.Sequential(
        conv(channels, channels), norm(), nn.ReLU(), conv(channels, channels), norm()
    )
    head = [nn.Dropout(dropout, seed=5)] if dropout is not None else []
    return nn.Sequential(conv(1, channels), norm(), nn.ReLU(), nn.MaxPool2d(2), nn.Residual(block),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), *head,
                         nn.Linear(channels, 10, rng=rng, backend=backend))  # fmt: skip
