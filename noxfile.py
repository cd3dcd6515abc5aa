"""Sessions: ``nox`` runs the tests on every backend (one session each) and the linters.

- ``nox -s "tests(backend='numpy')"``: the suite on one backend (``array_api_strict``,
  ``torch`` and ``cupy`` likewise). A backend that is not usable here is skipped with the
  reason, never failed. The numpy session also runs the suite with the kernels off
  (``numpy-generic``) and the docstring examples (``--doctest-modules``).
- ``nox -s mpi``: data-parallel training under ``mpiexec -n 2`` (``tests/test_distributed.py``).
- ``nox -s lint``: ruff check, ruff format --check and mypy over ``src/xpnet``.
- ``nox -s bench``: the benchmarks (not a default session).
- ``nox -s peers``: xpnet against PyTorch, Keras, Chainer, DeZero and tinygrad, each in a
  virtualenv of its own under ``.peers/`` (not a default session; see benchmarks/peers.py).

PyTorch is the tests' reference: ``XPNET_TORCH`` names the requirement to install
(default ``torch==2.13.0``); CuPy's wheel is ``XPNET_CUPY`` (default ``cupy-cuda13x``).
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests", "mpi", "lint"]
nox.options.reuse_venv = "yes"

BACKENDS = ["numpy", "array_api_strict", "torch", "cupy"]
TORCH = os.environ.get("XPNET_TORCH", "torch==2.13.0")
CUPY = os.environ.get("XPNET_CUPY", "cupy-cuda13x")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the test suite with the ``xp`` fixture restricted to one backend."""
    requirements = [".[test,plot]", TORCH]
    if backend == "cupy":
        if shutil.which("nvidia-smi") is None:
            session.skip("cupy: no NVIDIA GPU on this machine (nvidia-smi not found)")
        requirements.append(CUPY)
    session.install(*requirements)
    env = {"XPNET_TEST_BACKENDS": backend, "MPLBACKEND": "Agg"}
    session.run("pytest", *session.posargs, env=env)
    if backend == "numpy" and not session.posargs:
        # kernels/cupy.py imports cupy at the top (and holds no examples): skip it by path
        where = "import pathlib, xpnet.kernels as k; print(pathlib.Path(k.__file__).parent)"
        kernels = str(session.run("python", "-c", where, silent=True)).strip()
        ignore = f"--ignore={kernels}/cupy.py"
        session.run("pytest", "--doctest-modules", ignore, "--pyargs", "xpnet", env=env)


@nox.session
def mpi(session: nox.Session) -> None:
    """Data-parallel training under ``mpiexec -n 2`` (mpi4py and MPICH's wheel, no system
    MPI): 2 ranks against one process, SyncBatchNorm, checkpoints across rank counts,
    failing ranks. Each test starts its ranks with a timeout."""
    session.install(".[test,mpi]")
    env = {"XPNET_TEST_BACKENDS": "numpy", "MPLBACKEND": "Agg"}
    session.run("pytest", "tests/test_distributed.py", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree; mypy over the package."""
    session.install("ruff", "mypy", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: per-layer times, MNIST training, the NumPy step profile and the device
    operations per step (``-- --quick``: a smoke run)."""
    requirements = [".[plot]", TORCH, "threadpoolctl"]
    if shutil.which("nvidia-smi") is not None:
        requirements.append(CUPY)
    session.install(*requirements)
    for script in ("ops.py", "mnist.py", "profile_step.py", "launches.py"):
        session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session
def peers(session: nox.Session) -> None:
    """The same two nets' training step in xpnet and each peer library, one process each
    (``-- --quick``: one short round; ``-- --only xpnet,chainer``: a subset)."""
    session.install(".[plot,numba]", TORCH, "threadpoolctl")
    session.run("python", "benchmarks/peers.py", *session.posargs, env={"MPLBACKEND": "Agg"})
