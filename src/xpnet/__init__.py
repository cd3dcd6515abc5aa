"""xpnet: a convolutional-network library written once against the Python array API standard.

The same layer code, forward and hand-written backward, runs on NumPy (CPU), CuPy (CUDA),
PyTorch tensors and any array library that follows the standard.

Examples
--------
>>> import xpnet
>>> from xpnet import nn
>>> model = nn.Sequential(nn.Conv2d(1, 4, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10, rng=1))
>>> x = xpnet.asarray(xpnet.init.normal((2, 1, 28, 28), 1.0, rng=2))
>>> model(x).shape
(2, 10)
"""

from . import functional, init, kernels, nn, optim
from ._backend import (
    BACKENDS,
    asarray,
    available_backends,
    backend_of,
    get_backend,
    namespace,
    set_backend,
    to_numpy,
)
from .kernels import fast_paths_enabled, use_fast_paths

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "__version__",
    "asarray",
    "available_backends",
    "backend_of",
    "fast_paths_enabled",
    "functional",
    "get_backend",
    "init",
    "kernels",
    "namespace",
    "nn",
    "optim",
    "set_backend",
    "to_numpy",
    "use_fast_paths",
]
