"""The one place that knows about concrete array libraries.

Everything else in xpnet gets its namespace from its inputs (``array_namespace(x)``) and
uses only the array API standard. This module holds what cannot be written that way:

- which backends exist and whether each is usable here (``import`` works AND, for CuPy,
  a CUDA device answers);
- the namespace object for a backend name, and moving arrays between backends;
- random numbers drawn on the array's own device (used by ``Dropout``);
- which backend a set of arrays belongs to, for the kernel registry (:func:`plain_backend`;
  the kernels themselves live in ``xpnet/kernels/``);
- JAX's tracing: constants kept across calls built eagerly (:func:`constants_eagerly`).
"""

from __future__ import annotations

import importlib
import os
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

BACKENDS: tuple[str, ...] = ("numpy", "array_api_strict", "torch", "cupy", "jax")
"""Every backend name xpnet knows, in the order they are listed to users."""

_current_backend: str | None = None


@cache
def backend_status(name: str) -> tuple[bool, str]:
    """Whether backend ``name`` is usable here, and why not.

    Returns
    -------
    usable, reason : bool, str
        ``reason`` is ``""`` for a usable backend, else a one-line explanation.
    """
    check_backend_name(name, check_usable=False)
    if name == "numpy":
        return True, ""
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
        except (ImportError, OSError) as exc:  # OSError: CUDA libraries missing
            return False, f"cupy is not importable ({type(exc).__name__}: {exc})"
        try:
            usable = bool(cupy.is_available())
        except Exception as exc:  # the driver itself may raise
            return False, f"no CUDA device found ({type(exc).__name__}: {exc})"
        return (True, "") if usable else (False, "no CUDA device found")
    try:
        importlib.import_module(name)
    except ImportError as exc:
        return False, f"{name} is not installed ({exc})"
    return True, ""


def available_backends() -> list[str]:
    """List the backends usable on this machine.

    ``"cupy"`` is listed only when ``import cupy`` works and a CUDA device is usable.

    Returns
    -------
    list of str
        Names from :data:`BACKENDS`, in its order.

    Examples
    --------
    >>> import xpnet
    >>> "numpy" in xpnet.available_backends()
    True
    """
    return [name for name in BACKENDS if backend_status(name)[0]]


def check_backend_name(name: object, *, check_usable: bool = True) -> str:
    """Return ``name`` if it names a (usable) backend, else raise a clear error."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    if check_usable:
        usable, reason = backend_status(name)
        if not usable:
            available = ", ".join(available_backends())
            raise RuntimeError(f"{name}: {reason}; available: {available}")
    return name


def set_backend(name: str) -> None:
    """Set the default backend used by :func:`asarray`, :func:`namespace` and new layers.

    Parameters
    ----------
    name : str
        One of :func:`available_backends`.
    """
    global _current_backend
    _current_backend = check_backend_name(name)


def get_backend() -> str:
    """Return the default backend: the last :func:`set_backend`, else ``$XPNET_BACKEND``, else numpy.

    Returns
    -------
    str
        A name from :data:`BACKENDS`.
    """
    if _current_backend is not None:
        return _current_backend
    return check_backend_name(os.environ.get("XPNET_BACKEND", "numpy"))


def namespace(name: str | None = None) -> ModuleType:
    """Return the array-API namespace of backend ``name`` (default: :func:`get_backend`).

    Parameters
    ----------
    name : str, optional
        A name from :data:`BACKENDS`.

    Returns
    -------
    module
        The namespace (array-api-compat's wrapper where the library needs one).

    Examples
    --------
    >>> import xpnet
    >>> xp = xpnet.namespace("array_api_strict")
    >>> xp.__name__
    'array_api_strict'
    """
    name = check_backend_name(get_backend() if name is None else name)
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "jax":  # jax.numpy is itself an array-API namespace (array-api-compat has none)
        return importlib.import_module("jax.numpy")
    return importlib.import_module(f"array_api_compat.{name}")


def is_array(x: object) -> bool:
    """True for an array of any backend xpnet knows."""
    return bool(array_api_compat.is_array_api_obj(x)) and not isinstance(x, (int, float, bool))


def backend_of(x: Any) -> str:
    """Name the backend an array belongs to (``"numpy"``, ``"torch"``, ...).

    Parameters
    ----------
    x : array
        An array of any supported library.

    Returns
    -------
    str
        The backend's name; for a library xpnet does not know, its top-level module's.
    """
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_jax_array(x):
        return "jax"
    if array_api_compat.is_array_api_strict_namespace(array_api_compat.array_namespace(x)):
        return "array_api_strict"
    return type(x).__module__.split(".")[0]


def take_nonnegative(xp: Any, x: Any, index: Any, *, axis: int) -> Any:
    """``xp.take(x, index, axis=axis)`` for an ``index`` known to hold no negative values
    (the gathers of ``xpnet.functional._windows``, built by xpnet itself).

    The same on every backend but torch, where array-api-compat's ``take`` first maps
    negative indices (``where(index < 0, index + n, index)``: three more operations a
    call, each a kernel launch on a GPU); with no negative index to map,
    ``torch.index_select`` is the whole of it.
    """
    if array_api_compat.is_torch_array(x):
        import torch

        return torch.index_select(x, axis, index)
    return xp.take(x, index, axis=axis)


def constants_eagerly(xp: Any) -> AbstractContextManager[Any]:
    """A context in which arrays built from constants stay concrete: JAX's
    ``ensure_compile_time_eval`` for ``jax.numpy`` (inside ``jax.jit`` they would be traced
    values, which must not outlive the trace), nothing for other namespaces. Used by the
    cache of constant index arrays (``xpnet.functional._cache``)."""
    if getattr(xp, "__name__", "") == "jax.numpy":
        import jax

        return jax.ensure_compile_time_eval()
    return nullcontext()


def index_dtype(xp: Any) -> Any:
    """The namespace's default integer dtype for indices (``default_dtypes()["indexing"]``):
    int64, but int32 in JAX's default 32-bit mode, where asking for int64 would warn and
    give int32 anyway."""
    return xp.__array_namespace_info__().default_dtypes()["indexing"]


def plain_backend(*arrays: Any) -> str | None:
    """The backend of ``arrays`` if they are plain arrays of one backend, else ``None``.

    ``None`` entries are skipped. Subclasses of ``numpy.ndarray`` (masked arrays,
    matrices) are not plain: their own methods may differ, so they get no kernels.
    """
    names = set()
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, np.ndarray):
            if type(a) is not np.ndarray:
                return None
            names.add("numpy")
        else:
            names.add(backend_of(a))
    return names.pop() if len(names) == 1 else None


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend (CuPy, torch on any device, array_api_strict) to NumPy.

    Parameters
    ----------
    x : array
        An array of any backend, on any device.

    Returns
    -------
    numpy.ndarray
        A host copy (NumPy input is returned as it is).

    Examples
    --------
    >>> import xpnet
    >>> xpnet.to_numpy(xpnet.asarray([1.0, 2.0], backend="array_api_strict"))
    array([1., 2.])
    """
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if is_array(x):
        return np.from_dlpack(x)
    return np.asarray(x)


def asarray(obj: Any, *, backend: str | None = None, dtype: Any = None, device: Any = None) -> Any:
    """Create an array of ``backend`` (default :func:`get_backend`) from ``obj``.

    Parameters
    ----------
    obj : array_like or array of any backend
        Arrays of another backend are copied through NumPy on the host.
    backend : str, optional
        Target backend name.
    dtype : dtype or str, optional
        A dtype of the target namespace, or its name (``"float32"``).
    device : optional
        Target device, e.g. ``"cuda"`` for torch; default: the backend's default device.

    Returns
    -------
    array
        An array of ``backend``'s type on ``device``.

    Examples
    --------
    >>> import xpnet
    >>> x = xpnet.asarray([[1, 2], [3, 4]], backend="numpy", dtype="float32")
    >>> x.dtype
    dtype('float32')
    """
    xp = namespace(backend)
    if isinstance(dtype, str):
        dtype = getattr(xp, dtype)
    if is_array(obj) and backend_of(obj) != (backend or get_backend()):
        obj = to_numpy(obj)
    return xp.asarray(obj, dtype=dtype, device=device)


def device_info() -> dict[str, str]:
    """Describe each known backend here: its version and devices, or why it is unusable."""
    info: dict[str, str] = {}
    for name in BACKENDS:
        usable, reason = backend_status(name)
        if not usable:
            info[name] = f"unavailable: {reason}"
            continue
        module = importlib.import_module(name)
        text = f"{getattr(module, '__version__', '?')}"
        if name == "cupy":
            props = module.cuda.runtime.getDeviceProperties(0)
            text += f" on {props['name'].decode()} (CUDA runtime {module.cuda.runtime.runtimeGetVersion()})"
        elif name == "torch":
            cuda = module.cuda.is_available()
            text += f" (cuda: {module.cuda.get_device_name(0) if cuda else 'none'})"
        elif name == "jax":
            text += f" on {', '.join(str(d) for d in module.devices())}"
        else:
            text += " on cpu"
        info[name] = text
    return info


# --------------------------------------------------------------------------------------------
# Random numbers
# --------------------------------------------------------------------------------------------


class DeviceRandom:
    """Uniform random numbers drawn on the device of a given array.

    NumPy and array_api_strict draw from a seeded NumPy generator, CuPy from a seeded
    ``cupy.random.Generator`` on the GPU, torch from a seeded ``torch.Generator`` on the
    tensor's device and JAX from a seeded ``jax.random`` key (:attr:`jax_key`), so no
    random mask ever travels from the host per step.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        self._generators: dict[tuple[str, str], Any] = {}

    jax_key: Any = None
    """JAX's generator state: a ``jax.random`` key, split at each draw. A compiled step
    (:mod:`xpnet.compiled`) passes it in and takes the next one out."""

    def uniform(self, shape: tuple[int, ...], like: Any) -> Any:
        """Uniform [0, 1) numbers of ``shape`` with the dtype and device of ``like``."""
        name = backend_of(like)
        if name == "jax":  # before the device: a traced array has none to ask
            return self._jax_uniform(shape, like)
        key = (name, str(array_api_compat.device(like)))
        gen = self._generators.get(key)
        if name == "cupy":
            import cupy

            with array_api_compat.device(like):
                gen = gen or cupy.random.default_rng(self.seed)
                self._generators[key] = gen
                return gen.random(shape, dtype=like.dtype)
        if name == "torch":
            import torch

            gen = gen or torch.Generator(device=like.device).manual_seed(self.seed)
            self._generators[key] = gen
            return torch.rand(shape, generator=gen, dtype=like.dtype, device=like.device)
        gen = gen or np.random.default_rng(self.seed)
        self._generators[key] = gen
        xp = array_api_compat.array_namespace(like)
        values = gen.random(shape, dtype=np.float32 if "32" in str(like.dtype) else np.float64)
        return xp.asarray(values, device=array_api_compat.device(like))

    def seeded_jax_key(self) -> Any:
        """:attr:`jax_key`, made from the seed on first use."""
        if self.jax_key is None:
            import jax

            self.jax_key = jax.random.key(self.seed)
        return self.jax_key

    def _jax_uniform(self, shape: tuple[int, ...], like: Any) -> Any:
        """JAX: from ``jax.random`` with the key :attr:`jax_key`, so that the same draws
        happen eagerly and inside ``jax.jit``."""
        import jax

        self.jax_key, draw = jax.random.split(self.seeded_jax_key())
        return jax.random.uniform(draw, shape, dtype=like.dtype)
