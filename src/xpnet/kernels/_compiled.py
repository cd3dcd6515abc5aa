"""The optional compiled loops (``pip install "xpnet[numba]"``), found once.

:mod:`xpnet.kernels.numba_loops` holds a few NumPy kernels' passes as Numba loops: one pass
over memory where NumPy needs several. It is imported only if Numba is installed, and used
only while :data:`ENABLED` (``XPNET_NUMBA=0`` starts a process without it, Numba not even
imported); each kernel
that uses it falls back to its NumPy passes otherwise, and ``tests/test_kernels_numpy.py``
checks both give the same results.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

loops: ModuleType | None = None
if os.environ.get("XPNET_NUMBA", "1") != "0":  # XPNET_NUMBA=0: not even imported
    try:
        from . import numba_loops as loops
    except ImportError:  # pragma: no cover - depends on the environment
        loops = None

ENABLED: bool = loops is not None


def available() -> ModuleType | None:
    """The compiled loops module while it is installed and enabled, else ``None``."""
    return loops if ENABLED else None


@contextlib.contextmanager
def one_thread() -> Iterator[ModuleType]:
    """The loops module, set to run on the calling thread alone inside the block.

    The loops are compiled ``parallel=True``, which lets LLVM vectorise them (compiled
    serially, the Winograd input transform ran 7x slower: unvectorised), but run on one
    thread: after a matrix product OpenBLAS's worker threads spin on the other cores for
    about 0.1 s, and two loop threads beside them measured 2x slower than one.
    """
    assert loops is not None
    previous = loops.get_num_threads()
    loops.set_num_threads(1)
    try:
        yield loops
    finally:
        loops.set_num_threads(previous)
