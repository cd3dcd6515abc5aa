"""The table of kernels: ``(backend, op name) -> callable``, filled by the kernel modules.

A leaf module: kernel modules import :func:`register` from here, and
:mod:`xpnet.kernels` reads the table, so no module imports its own importer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Kernel = Callable[..., Any]
K = TypeVar("K", bound=Kernel)

_TABLE: dict[tuple[str, str], Kernel] = {}


def register(backend: str, op: str) -> Callable[[K], K]:
    """Decorator: make the function the ``backend`` kernel of ``op`` (e.g. ``"conv2d_forward"``).

    The kernel takes the op's arguments after validation (sizes as (h, w) pairs) and
    returns what the op returns, or ``None`` to leave these arguments to the generic code.
    """

    def decorate(kernel: K) -> K:
        if (backend, op) in _TABLE:
            raise ValueError(f"register: {backend} already has a kernel for {op!r}")
        _TABLE[backend, op] = kernel
        return kernel

    return decorate


def lookup(backend: str, op: str) -> Kernel | None:
    """The kernel registered for ``op`` on ``backend``, or ``None``."""
    return _TABLE.get((backend, op))


def entries() -> list[tuple[str, str]]:
    """Every registered ``(backend, op)`` pair, sorted."""
    return sorted(_TABLE)
