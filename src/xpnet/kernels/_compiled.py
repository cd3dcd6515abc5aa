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


LOOP_THREADS = os.environ.get("XPNET_LOOP_THREADS", "all")
"""``all`` (the default): the loops run on every thread Numba has, and NumPy's BLAS on one
(:func:`owns_cores`); ``1``: the loops on the calling thread alone, BLAS left as it is."""
if LOOP_THREADS not in ("all", "1"):
    raise ValueError(f"XPNET_LOOP_THREADS must be 'all' or '1'; got {LOOP_THREADS!r}")

_owns_cores: bool | None = None  # decided at the first loop's call


def owns_cores() -> bool:
    """Whether the loops run on all of Numba's threads: NumPy's BLAS set to one thread
    (``threadpoolctl``, for the rest of the process) at the first call, unless
    ``XPNET_LOOP_THREADS=1`` or threadpoolctl is missing.

    Two pools of threads cannot share this project's two cores: after each matrix product
    OpenBLAS's workers spin for about 0.1 s, and a two-thread loop started beside them
    took 8 ms instead of 0.8 (a 16 -> 32 channel 5x5 convolution, batch 128). Setting
    OpenBLAS to one thread after the fact does not stop workers already spinning, so it
    is set once, before the loops first run, and the loops then take every core, as
    PyTorch's one OpenMP pool does (docs/history.md, seventh pass). The matrix products
    left on BLAS (dense layers, im2col for first layers) run on one core.
    """
    global _owns_cores
    if _owns_cores is None:
        _owns_cores = False
        if LOOP_THREADS == "all" and loops is not None:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - depends on the environment
                return False
            threadpool_limits(limits=1, user_api="blas")
            _owns_cores = True
    return _owns_cores


PARALLEL_MIN_WORK = 2**16
"""A loop's work below which it runs on the calling thread alone even where the loops own
the cores: elements for the one-pass loops, multiply-adds / 32 for the convolutions
(both about 30-60 us on one thread). Starting and joining the other threads costs more
than such a loop saves: scikit-learn's grid search of the README on 8x8 digits took 33.7 s
with every loop on two threads, 15.9 s on one."""


@contextlib.contextmanager
def loop_threads(work: int) -> Iterator[ModuleType]:
    """The loops module, on every Numba thread where :func:`owns_cores` and ``work`` is at
    least :data:`PARALLEL_MIN_WORK`, else on the calling thread alone inside the block.

    The loops are compiled ``parallel=True``, which also lets LLVM vectorise them
    (compiled serially, the Winograd input transform ran 7x slower: unvectorised). On one
    thread they leave BLAS's workers a core of their own.
    """
    assert loops is not None
    if owns_cores() and work >= PARALLEL_MIN_WORK:
        yield loops
        return
    previous = loops.get_num_threads()
    loops.set_num_threads(1)
    try:
        yield loops
    finally:
        loops.set_num_threads(previous)
