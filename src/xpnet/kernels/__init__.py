"""Optional faster versions of some ops, one module per backend, found by op name.

:mod:`xpnet.functional` is the one definition of every op and runs on any backend. A
backend may register a *kernel* for an op (the package ``xpnet/kernels/numpy/``, one module
per op family; ``xpnet/kernels/cupy.py``): a function with the op's signature that returns
the same result, faster, or ``None`` to leave a case to the generic code. Each op asks once per call::

    kernel = kernel_for("conv2d_forward", x, weight, bias)
    if kernel is not None:
        return kernel(x, weight, bias, stride=stride, padding=padding)
    ...  # the generic array-API code

A kernel is handed out only for plain arrays of the backend it was registered for, while
kernels are on (:func:`use_fast_paths`, ``XPNET_FAST_PATHS=0``). The backward of a forward
that a kernel made finds its own kernel through the saved tuple (:func:`backward_for`),
whatever the switch says by then: the kernel's saved arrays have its own layout.

Every registered kernel is tested equal to the generic op it replaces by one test driven
by this registry (``tests/test_kernels.py``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any

from .._backend import backend_status, plain_backend
from ._registry import Kernel, entries, lookup

KERNEL_MODULES: dict[str, str] = {"numpy": "xpnet.kernels.numpy"}
"""The module holding each backend's kernels, imported on first use."""
if os.environ.get("XPNET_CUPY_KERNELS", "0") == "1":  # not yet verified on a GPU: opt in
    KERNEL_MODULES["cupy"] = "xpnet.kernels.cupy"

_enabled: bool = os.environ.get("XPNET_FAST_PATHS", "1") != "0"
_loaded: dict[str, bool] = {}  # backend -> whether it has a kernel module (imported)


def _load(backend: str) -> bool:
    """Import ``backend``'s kernel module (once); False if it has none."""
    loaded = _loaded.get(backend)
    if loaded is None:
        module = KERNEL_MODULES.get(backend)
        if module is not None:
            importlib.import_module(module)
        loaded = _loaded[backend] = module is not None
    return loaded


def kernel_for(op: str, *arrays: Any) -> Kernel | None:
    """The kernel for ``op`` on these arrays' backend, or ``None`` (use the generic code).

    ``None`` entries in ``arrays`` (an absent bias) are skipped. Arrays of several
    backends, subclasses (e.g. NumPy masked arrays), or kernels switched off give ``None``.

    Parameters
    ----------
    op : str
        The op's name, e.g. ``"conv2d_forward"``.
    *arrays : array or None
        The op's array arguments.

    Returns
    -------
    callable or None
        The registered kernel; ``None``: run the generic code.
    """
    if not _enabled:
        return None
    backend = plain_backend(*arrays)
    if backend is None or not _load(backend):
        return None
    return lookup(backend, op)


def backward_for(op: str, saved: Any) -> Kernel | None:
    """The kernel for backward ``op`` paired with the forward that made ``saved``.

    ``None`` when the generic code made it (``saved.made_by is None``).

    Parameters
    ----------
    op : str
        The backward op's name, e.g. ``"conv2d_backward"``.
    saved : named tuple
        What the forward saved; its ``made_by`` names the backend whose kernel made it.

    Returns
    -------
    callable or None
        The matching backward kernel; ``None`` for the generic code.
    """
    made_by: str | None = saved.made_by
    if made_by is None:
        return None
    kernel = lookup(made_by, op) if _load(made_by) else None
    if kernel is None:
        raise RuntimeError(f"{op}: the {made_by} kernels made this forward but have no {op}")
    return kernel


def registered() -> list[tuple[str, str]]:
    """Every ``(backend, op)`` with a kernel, after loading each usable backend's module.

    Returns
    -------
    list of (str, str)
        ``(backend, op)`` pairs, sorted.
    """
    for backend in KERNEL_MODULES:
        if backend_status(backend)[0]:
            _load(backend)
    return entries()


def fast_paths_enabled() -> bool:
    """Whether ops take the registered kernels (see :func:`use_fast_paths`).

    Returns
    -------
    bool
        ``False`` inside ``use_fast_paths(False)`` or with ``XPNET_FAST_PATHS=0``.
    """
    return _enabled


@contextlib.contextmanager
def use_fast_paths(enabled: bool) -> Iterator[None]:
    """Turn every backend's kernels on or off inside a ``with`` block.

    Off, every op runs the generic array-API code, as on a backend without kernels
    (``XPNET_FAST_PATHS=0`` starts a process with them off).

    Parameters
    ----------
    enabled : bool
        Kernels on (``True``) or off inside the block.

    Yields
    ------
    None
        The previous setting is restored when the block ends.

    Examples
    --------
    >>> import numpy as np
    >>> import xpnet
    >>> from xpnet import functional as F
    >>> x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    >>> with xpnet.use_fast_paths(False):  # the generic array-API code, as on any backend
    ...     generic = F.conv2d(x, w)
    >>> bool((generic == F.conv2d(x, w)).all())
    True
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = previous


__all__ = [
    "KERNEL_MODULES",
    "backward_for",
    "fast_paths_enabled",
    "kernel_for",
    "registered",
    "use_fast_paths",
]
