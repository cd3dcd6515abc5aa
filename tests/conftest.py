"""The ``xp`` fixture: every backend test runs once per backend, ids = backend names.

``XPNET_TEST_BACKENDS`` (comma-separated) restricts the backends
(``XPNET_TEST_BACKENDS=torch nox -s tests``); a selected backend that is not usable here
is skipped with the reason. ``numpy`` brings
``numpy-generic`` along: NumPy with the kernels off (``use_fast_paths(False)``), so every
test covers both NumPy paths. Tests on ``cupy`` carry the ``gpu`` marker
(``pytest -m gpu`` runs just those).
"""

from __future__ import annotations

import os

# scikit-learn's array-API dispatch (tests/test_sklearn.py) needs SciPy's array-API mode,
# which SciPy reads once, at its import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# JAX makes float32 arrays of float64 input unless 64-bit mode is on (read at its import);
# the references compare in float64. Users' runs (and the CLI's subprocess tests, which
# drop this) keep JAX's float32 default.
os.environ.setdefault("JAX_ENABLE_X64", "1")

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np
import pytest

import xpnet
from xpnet._backend import BACKENDS, backend_status
from xpnet.kernels import use_fast_paths

from . import background

GENERIC = "numpy-generic"
"""NumPy with every kernel off: the generic array-API code, as any other backend runs it."""
TORCH_CUDA = "torch-cuda"
"""torch tensors on the GPU: torch's default device is ``cuda`` during the test."""
VARIANTS = {"numpy": [GENERIC], "torch": [TORCH_CUDA]}
"""Each backend name brings these along (``XPNET_TEST_BACKENDS=torch`` runs torch-cuda too,
skipped without CUDA)."""

COVERED = ("numpy", GENERIC)
"""Coverage (``nox -s tests``) is measured on these backends and on every test that takes
no backend, as the per-backend numpy session measured it; pytest-cov's ``no_cover`` marker
pauses the tracer in the other backends' tests (the same lines again, at a third more time)."""

_names = os.environ.get("XPNET_TEST_BACKENDS", ",".join(BACKENDS)).split(",")
SELECTED = list(
    dict.fromkeys(variant for name in _names if name for variant in [name, *VARIANTS.get(name, [])])
)
_worst_error: dict[str, tuple[float, str]] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xp" in metafunc.fixturenames:
        metafunc.parametrize("xp", SELECTED, ids=SELECTED, indirect=True)


def _runs_in_background(item: pytest.Item) -> bool:
    return hasattr(getattr(item, "module", None), "start_in_background")


PART = os.environ.get("XPNET_TEST_PART", "")
"""``nox -s tests`` runs the suite as two processes side by side (the JAX backend's tests
compile on one core while the rest runs on the other): ``jax-backend`` keeps only the tests
of the ``jax`` backend and of the modules that set ``JAX_PART = True`` (JAX alone: the
compiled step, JAX's autodiff as a reference), ``without-jax-backend`` everything else;
unset, everything."""
PARTS = ("", "jax-backend", "without-jax-backend")


def _xp_param(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("xp")


def _in_jax_part(item: pytest.Item) -> bool:
    return _xp_param(item) == "jax" or getattr(getattr(item, "module", None), "JAX_PART", False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PART not in PARTS:
        raise pytest.UsageError(f"XPNET_TEST_PART must be one of {PARTS}; got {PART!r}")
    if PART:
        keep_jax = PART == "jax-backend"
        kept = [item for item in items if _in_jax_part(item) == keep_jax]
        dropped = [item for item in items if _in_jax_part(item) != keep_jax]
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    for item in items:
        param = _xp_param(item)
        if param in ("cupy", TORCH_CUDA):
            item.add_marker(pytest.mark.gpu)
        if param is not None and param not in COVERED:
            item.add_marker(pytest.mark.no_cover)
    # the tests whose scripts run in the background go last, when their runs are done
    items.sort(key=_runs_in_background)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the selected tests' subprocess runs now, on a background thread, so they
    overlap the rest of the suite (``tests/background.py``)."""
    for item in session.items:
        if _runs_in_background(item):
            item.module.start_in_background(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Runs still queued are not started (after ``-x``, Ctrl-C, or a failed session)."""
    background.cancel_pending()


def backend_name(param: str) -> str:
    """The xpnet backend behind an ``xp`` parameter (numpy-generic is NumPy, torch-cuda torch)."""
    return {GENERIC: "numpy", TORCH_CUDA: "torch"}.get(param, param)


@contextmanager
def _torch_default_device(param: str) -> Iterator[None]:
    """For torch-cuda: new tensors (``xp.asarray``, layers' weights) on the GPU."""
    if param != TORCH_CUDA:
        yield
        return
    import torch

    if not torch.cuda.is_available():
        pytest.skip("torch-cuda unavailable: torch has no CUDA device here")
    torch.set_default_device("cuda")
    try:
        yield
    finally:
        torch.set_default_device("cpu")


@pytest.fixture
def xp(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The array-API namespace of one backend (skipped with the reason if unusable here)."""
    name = backend_name(request.param)
    usable, reason = backend_status(name)
    if not usable:
        pytest.skip(f"backend {name} unavailable: {reason}")
    with use_fast_paths(request.param != GENERIC), _torch_default_device(request.param):
        yield xpnet.namespace(name)


EXAMPLE_SHARE = {"jax": 0.1}
"""The share of each Hypothesis test's examples a backend runs (default: all of them).
Eager JAX compiles every operation anew for each new shape (2-3 s per random conv case
here), and the generic code it runs is already checked with every example on
numpy-generic; a tenth of them (at least 2) shows that JAX runs it the same."""


@pytest.fixture(autouse=True)
def _examples_per_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """Scale a Hypothesis test's ``max_examples`` by :data:`EXAMPLE_SHARE` for its backend.

    Hypothesis reads the settings from the test function when it runs; they are put back
    after the test."""
    callspec = getattr(request.node, "callspec", None)
    share = EXAMPLE_SHARE.get(callspec.params.get("xp") if callspec else None)
    test = getattr(request.node, "function", None)
    if share is None or not hasattr(getattr(test, "hypothesis", None), "inner_test"):
        yield
        return
    from hypothesis import settings

    attribute = "_hypothesis_internal_use_settings"  # where @settings puts them
    full = getattr(test, attribute)  # AttributeError here: Hypothesis moved them; update
    setattr(test, attribute, settings(full, max_examples=max(2, round(full.max_examples * share))))
    try:
        yield
    finally:
        setattr(test, attribute, full)


@pytest.fixture
def backend(xp: ModuleType, request: pytest.FixtureRequest) -> str:
    """The xpnet backend name of ``xp`` (``"numpy"`` for numpy-generic too)."""
    return backend_name(request.node.callspec.params["xp"])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def record_error():
    """Record a relative error against PyTorch; the worst one is printed after the run."""

    def record(value: float, where: str) -> None:
        backend = "?"
        if "[" in where:
            param = where.split("[")[-1].rstrip("]")
            variant = next((v for v in (GENERIC, TORCH_CUDA) if param.startswith(v)), None)
            backend = variant or param.split("-")[0]
        if value > _worst_error.get(backend, (-1.0, ""))[0]:
            _worst_error[backend] = (value, where)

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    for backend, (value, where) in sorted(_worst_error.items()):
        terminalreporter.write_line(
            f"largest relative error vs PyTorch on {backend}: {value:.3e} ({where})"
        )


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max(|expected|, tiny), both as float64 NumPy."""
    actual = np.asarray(xpnet.to_numpy(actual), dtype=np.float64)
    expected = np.asarray(xpnet.to_numpy(expected), dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-12)
    return float(np.max(np.abs(actual - expected), initial=0.0)) / scale


def pytest_configure(config) -> None:
    # Hypothesis imports libcst when it reports a failure; some libcst releases warn on import,
    # which filterwarnings=error would turn into an INTERNALERROR hiding the real failure.
    import contextlib
    import warnings

    with warnings.catch_warnings(), contextlib.suppress(ImportError):
        warnings.simplefilter("ignore", DeprecationWarning)
        import libcst  # noqa: F401
