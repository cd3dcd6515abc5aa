"""The type aliases every module shares (one definition, imported everywhere)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, TypeAlias

Array: TypeAlias = Any
"""An array of any backend (NumPy, CuPy, torch, JAX, array_api_strict, ...)."""

Namespace: TypeAlias = ModuleType
"""An array-API namespace, as ``array_api_compat.array_namespace`` returns it."""

IntPair: TypeAlias = tuple[int, int]
"""An (h, w) pair: a kernel size, stride or padding."""
