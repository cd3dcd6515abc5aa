"""Weight initialisation, drawn reproducibly on the host from a seeded NumPy generator and
moved to the backend.

The schemes and their names follow PyTorch's ``torch.nn.init``: He/Kaiming, Glorot/Xavier
and LeCun, each normal and uniform. ``fan_in`` of a conv weight (C_out, C_in, kH, kW) is
``C_in * kH * kW``; ``fan_out`` is ``C_out * kH * kW``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._backend import asarray

Shape = tuple[int, ...]

__all__ = [
    "calculate_gain",
    "fan_in_and_fan_out",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "make_rng",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def make_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed, a generator (returned as is) or ``None`` (fresh entropy).

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        What to make the generator from.

    Returns
    -------
    numpy.random.Generator
        The generator.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fan_in_and_fan_out(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (PyTorch's convention).

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).

    Returns
    -------
    fan_in, fan_out : int
        ``C_in * receptive field`` and ``C_out * receptive field``.
    """
    if len(shape) < 2:
        raise ValueError(f"fan_in_and_fan_out: shape must have at least 2 dims; got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for ``nonlinearity`` (as ``torch.nn.init.calculate_gain``).

    Parameters
    ----------
    nonlinearity : str
        ``linear``, ``conv2d``, ``sigmoid``, ``tanh``, ``relu`` or ``leaky_relu``.
    param : float, optional
        The negative slope of ``leaky_relu`` (default 0.01).

    Returns
    -------
    float
        The gain.
    """
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    raise ValueError(
        f"calculate_gain: nonlinearity must be linear, conv2d, sigmoid, tanh, relu or "
        f"leaky_relu; got {nonlinearity!r}"
    )


def _finish(values: np.ndarray, backend: str | None, dtype: str) -> Any:
    return asarray(values.astype(dtype), backend=backend, dtype=dtype)


def uniform(
    shape: Shape,
    low: float,
    high: float,
    *,
    rng: Any = None,
    backend: str | None = None,
    dtype: str = "float32",
) -> Any:
    """Values drawn from U(low, high).

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    low, high : float
        The interval.
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    return _finish(make_rng(rng).uniform(low, high, size=shape), backend, dtype)


def normal(
    shape: Shape, std: float, *, rng: Any = None, backend: str | None = None, dtype: str = "float32"
) -> Any:
    """Values drawn from N(0, std**2).

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    std : float
        The standard deviation.
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    return _finish(make_rng(rng).normal(0.0, std, size=shape), backend, dtype)


def zeros(shape: Shape, *, backend: str | None = None, dtype: str = "float32") -> Any:
    """An array of zeros.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    return _finish(np.zeros(shape), backend, dtype)


def _fan(shape: Shape, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform(
    shape: Shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Any = None,
    backend: str | None = None,
    dtype: str = "float32",
) -> Any:
    """He/Kaiming uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    a : float
        The negative slope of a leaky ReLU (for the gain).
    mode : {"fan_in", "fan_out"}
        Keep the forward's (``fan_in``) or the backward's variance.
    nonlinearity : str
        The activation after the layer (see :func:`calculate_gain`).
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.

    Examples
    --------
    >>> from xpnet import init
    >>> w = init.kaiming_uniform((8, 1, 5, 5), nonlinearity="relu", rng=0, backend="numpy")
    >>> w.shape, str(w.dtype)
    ((8, 1, 5, 5), 'float32')
    """
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, -bound, bound, rng=rng, backend=backend, dtype=dtype)


def kaiming_normal(
    shape: Shape,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Any = None,
    backend: str | None = None,
    dtype: str = "float32",
) -> Any:
    """He/Kaiming normal: N(0, std**2) with ``std = gain / sqrt(fan)``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    a : float
        The negative slope of a leaky ReLU (for the gain).
    mode : {"fan_in", "fan_out"}
        Keep the forward's (``fan_in``) or the backward's variance.
    nonlinearity : str
        The activation after the layer (see :func:`calculate_gain`).
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return normal(shape, std, rng=rng, backend=backend, dtype=dtype)


def xavier_uniform(
    shape: Shape,
    *,
    gain: float = 1.0,
    rng: Any = None,
    backend: str | None = None,
    dtype: str = "float32",
) -> Any:
    """Glorot/Xavier uniform: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    gain : float
        Scales the bound or standard deviation.
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    bound = _glorot_scale(shape, gain, 6.0)
    return uniform(shape, -bound, bound, rng=rng, backend=backend, dtype=dtype)


def xavier_normal(
    shape: Shape,
    *,
    gain: float = 1.0,
    rng: Any = None,
    backend: str | None = None,
    dtype: str = "float32",
) -> Any:
    """Glorot/Xavier normal: ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    gain : float
        Scales the bound or standard deviation.
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    return normal(shape, _glorot_scale(shape, gain, 2.0), rng=rng, backend=backend, dtype=dtype)


def _glorot_scale(shape: Shape, gain: float, numerator: float) -> float:
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return gain * math.sqrt(numerator / (fan_in + fan_out))


def lecun_uniform(
    shape: Shape, *, rng: Any = None, backend: str | None = None, dtype: str = "float32"
) -> Any:
    """LeCun uniform: U(-b, b) with ``b = sqrt(3 / fan_in)``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    bound = math.sqrt(3.0 / fan_in_and_fan_out(shape)[0])
    return uniform(shape, -bound, bound, rng=rng, backend=backend, dtype=dtype)


def lecun_normal(
    shape: Shape, *, rng: Any = None, backend: str | None = None, dtype: str = "float32"
) -> Any:
    """LeCun normal: ``std = 1 / sqrt(fan_in)``.

    Parameters
    ----------
    shape : tuple of int
        The weight's shape, e.g. (C_out, C_in, kH, kW).
    rng : int, numpy.random.Generator or None
        Seed or generator (``None``: fresh entropy).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    array
        Of ``shape``, on ``backend``.
    """
    std = 1.0 / math.sqrt(fan_in_and_fan_out(shape)[0])
    return normal(shape, std, rng=rng, backend=backend, dtype=dtype)


he_uniform, he_normal = kaiming_uniform, kaiming_normal
glorot_uniform, glorot_normal = xavier_uniform, xavier_normal
