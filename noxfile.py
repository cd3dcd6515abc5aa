"""Sessions: ``nox`` runs the whole suite on every backend in one environment and builds
the documentation beside it, then runs the linters.

- ``nox -s tests``: one virtualenv (PyTorch, the reference, installed once), one pytest run
  over every backend (``numpy``, ``numpy-generic``, ``array_api_strict``, ``torch``,
  ``torch-cuda``, ``cupy``, ``jax``; one that is not usable here is skipped with the reason;
  ``jax`` also runs the compiled step and JAX's autodiff as a second reference; the ``jax``
  backend's tests, the compiled step's and the autodiff's run in a second process beside
  the rest, on the other core, their coverage combined with the rest's, and the
  documentation build follows them there; each process runs every pool of threads on
  one thread), the data-parallel tests under ``mpiexec -n 2`` (mpi4py and MPICH's
  wheel), coverage against a floor (``[tool.coverage.report] fail_under``), then the
  docstring examples. Tests that do not
  depend on the backend run once. ``XPNET_TEST_BACKENDS=torch nox -s tests``: one backend;
  ``nox -s tests -- -k conv``: pytest's own arguments (either: no coverage, no doctests, no
  documentation build).
- ``nox -s quick``: the inner loop, the tests not marked ``slow`` on NumPy (and numpy-generic),
  in the ``tests`` session's environment (under a minute here).
- ``nox -s lint``: ruff check, ruff format --check and mypy over ``src/xpnet``.
- ``nox -s docs``: the documentation site alone (``docs/_build/html``), built with warnings
  as errors, the gallery executed (``-- -D plot_gallery=0``: without running it), in the
  ``tests`` session's environment.
- ``nox -s bench``: the benchmarks (not a default session).
- ``nox -s peers``: xpnet against PyTorch, Keras, Chainer, DeZero and tinygrad, each in a
  virtualenv of its own under ``.peers/`` (not a default session; see benchmarks/peers.py).

PyTorch is the tests' reference: ``XPNET_TORCH`` names the requirement to install
(default ``torch==2.13.0``); CuPy's wheel is ``XPNET_CUPY`` (default ``cupy-cuda13x``),
installed only where ``nvidia-smi`` is found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nox

# Not uv: uv does not look in the local wheel folder pip is set up with here, and would fetch
# a CUDA build of torch (several GB) instead of the CPU wheel on disk.
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"

TORCH = os.environ.get("XPNET_TORCH", "torch==2.13.0")
CUPY = os.environ.get("XPNET_CUPY", "cupy-cuda13x")
TEST_ENV = {"MPLBACKEND": "Agg"}
TESTS_PYTHON = str(Path(".nox", "tests", "Scripts" if os.name == "nt" else "bin", "python"))
"""The ``tests`` session's Python, which ``quick`` and ``docs`` run in too."""
SPHINX = ["sphinx", "-q", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"]
"""The documentation build: warnings are errors; only they are printed."""
ONE_CORE = {"XPNET_LOOP_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""The suite's two processes share the machine's cores, one each: every pool of threads in
them (xpnet's compiled loops, OpenBLAS, PyTorch's OpenMP) runs on one thread. A pool of two
beside the other process's busy core waits on it: the README's grid search took 78-121 s
in the suite with OpenBLAS on two threads, 25 s on one, 13 s alone."""


def _test_requirements() -> list[str]:
    """What the suite needs: the package with its test extras, the reference, MPI, coverage."""
    requirements = [".[test,plot,mpi,jax,docs]", TORCH, "pytest-cov"]
    if shutil.which("nvidia-smi") is not None:
        requirements.append(CUPY)
    return requirements


@nox.session
def tests(session: nox.Session) -> None:
    """Run the suite on every backend (the jax backend's tests in a process beside the
    rest, then the documentation build there), with coverage and the doctests."""
    # --no-compile: Python compiles what the tests import, when they import it (pip's
    # byte-compiling of every file of torch, JAX and SciPy cost 14 s of the install here)
    session.install("--no-compile", *_test_requirements())
    if session.posargs or os.environ.get("XPNET_TEST_BACKENDS"):  # a part: no coverage floor
        session.run("pytest", *session.posargs, env=TEST_ENV)
        return
    # The jax backend's tests compile on one core (eager JAX compiles each operation per
    # shape, single-threaded) while the rest runs beside them; the compiled step's and the
    # autodiff's tests (conftest.JAX_PART) go with them, and their coverage (compiled.py)
    # joins the rest's before the floor is checked. The documentation build (nox -s docs)
    # follows them on that core, in the time the rest takes longer.
    beside = _Beside(session)
    beside.start()
    try:
        env = {**TEST_ENV, **ONE_CORE, "XPNET_TEST_PART": "without-jax-backend"}
        session.run("pytest", "--cov=xpnet", "--cov-report=", "--cov-fail-under=0",
                    "--durations=15", env=env)  # fmt: skip
        _doctests(session)  # while the other core still works
    finally:
        beside.join()
        for name, (code, seconds, log) in beside.results.items():
            session.log(f"{name}, run beside the rest (exit code {code}, {seconds:.0f} s):\n"
                        f"{log.read_text()}")  # fmt: skip
    failed = [name for name, (code, _, _) in beside.results.items() if code != 0]
    if failed:
        session.error(f"failed beside the rest: {', '.join(failed)} (see above)")
    session.run("coverage", "combine", "--append", str(beside.coverage))
    session.run("coverage", "report")  # fails under [tool.coverage.report] fail_under


def _doctests(session: nox.Session) -> None:
    """The docstring examples, on NumPy."""
    # kernels/cupy.py imports cupy at the top (and holds no examples): skip it by path
    where = "import pathlib, xpnet.kernels as k; print(pathlib.Path(k.__file__).parent)"
    kernels = str(session.run("python", "-c", where, silent=True)).strip()
    ignore = f"--ignore={kernels}/cupy.py"
    doctest_env = {**TEST_ENV, **ONE_CORE, "XPNET_TEST_BACKENDS": "numpy"}
    session.run("pytest", "--doctest-modules", ignore, "--pyargs", "xpnet", env=doctest_env)


class _Beside(threading.Thread):
    """In the background, one after the other: pytest on the jax backend's tests alone
    (its coverage to a data file of its own), then the documentation build. Each one's
    output goes to a log in the session's temporary folder; ``results`` holds each one's
    exit code, seconds and log once the thread has ended."""

    def __init__(self, session: nox.Session) -> None:
        super().__init__(daemon=True)
        tmp = Path(session.create_tmp())
        self.coverage = tmp / ".coverage.jax-backend"
        self.coverage.unlink(missing_ok=True)
        bin_dir = str(session.bin)
        python = str(Path(bin_dir, "python"))
        base = {
            **os.environ,
            **TEST_ENV,
            **ONE_CORE,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        }
        # XPNET_NUMBA=0: what this process runs on NumPy (fixtures, references) takes the
        # generic code; compiling the Numba loops here too cost it 40 s (the main part
        # tests them, and has them cached by the time the documentation's gallery runs).
        # JAX_DISABLE_MOST_OPTIMIZATIONS: XLA compiles each eager operation and each traced
        # step without its optimisation passes; these tests compare values on tiny arrays,
        # and compiling was most of their time (six of the slowest: 75 -> 54 s here).
        jax_env = {**base, "XPNET_TEST_BACKENDS": "jax", "XPNET_TEST_PART": "jax-backend",
                   "XPNET_NUMBA": "0", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
                   "COVERAGE_FILE": str(self.coverage)}  # fmt: skip
        self.steps = [
            ("the jax backend's tests", tmp / "jax-backend.log", jax_env,
             [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=5",
              "--cov=xpnet", "--cov-report=", "--cov-fail-under=0"]),
            ("the documentation build", tmp / "docs.log", base, [python, "-m", *SPHINX]),
        ]  # fmt: skip
        self.results: dict[str, tuple[int, float, Path]] = {}

    def run(self) -> None:
        for name, log, env, command in self.steps:
            started = time.perf_counter()
            with log.open("w") as handle:
                code = subprocess.run(
                    command, stdout=handle, stderr=subprocess.STDOUT, env=env
                ).returncode
            self.results[name] = (code, time.perf_counter() - started, log)


@nox.session(venv_backend="none")
def quick(session: nox.Session) -> None:
    """The inner loop: the tests not marked ``slow``, on NumPy, in ``tests``' environment
    (brought up to date first; ``-- -x -k pool``: more pytest arguments)."""
    _install_tests_environment(session)
    env = {**TEST_ENV, "XPNET_TEST_BACKENDS": "numpy"}
    session.run(TESTS_PYTHON, "-m", "pytest", "-m", "not slow", "-q", *session.posargs, env=env,
                external=True)  # fmt: skip


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree; mypy over the package."""
    session.install("--no-compile", "ruff", "mypy", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Build the site with Sphinx from ``docs/`` into ``docs/_build/html``: warnings
    (numpydoc's validation of every public docstring included) are errors, the gallery in
    ``examples/`` runs, and nothing is fetched from the network. In the ``tests`` session's
    environment (made first where it is missing), which has most of what the gallery runs
    and, after the tests, the compiled loops cached; ``-- -D plot_gallery=0``: without
    running the gallery."""
    if not Path(TESTS_PYTHON).exists():
        _install_tests_environment(session)
    session.run(TESTS_PYTHON, "-m", "pip", "install", "--quiet", ".[docs]", external=True)
    session.run(TESTS_PYTHON, "-m", *SPHINX, *session.posargs, env=TEST_ENV, external=True)


def _install_tests_environment(session: nox.Session) -> None:
    """Make (or bring up to date) the ``tests`` session's environment, for ``quick`` and
    ``docs``, which run in it."""
    session.run(sys.executable, "-m", "nox", "-s", "tests", "--install-only", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: per-layer times, MNIST training, the NumPy step profile, the device
    operations per step, the shape matrix and the JAX step (``-- --quick``: a smoke run)."""
    requirements = [".[plot,jax]", TORCH, "threadpoolctl"]
    if shutil.which("nvidia-smi") is not None:
        requirements.append(CUPY)
    session.install(*requirements)
    scripts = ("ops.py", "mnist.py", "profile_step.py", "launches.py", "shapes.py", "jax_step.py")
    for script in scripts:
        session.run("python", f"benchmarks/{script}", *session.posargs)


@nox.session
def peers(session: nox.Session) -> None:
    """The same two nets' training step in xpnet and each peer library, one process each
    (``-- --quick``: one short round; ``-- --only xpnet,chainer``: a subset)."""
    session.install(".[plot,numba]", TORCH, "threadpoolctl")
    session.run("python", "benchmarks/peers.py", *session.posargs, env={"MPLBACKEND": "Agg"})
