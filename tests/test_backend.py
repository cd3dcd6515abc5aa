"""Backend selection, array conversion and device-side random numbers."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import _backend

from .helpers import as_np


def test_available_backends_lists_numpy_first():
    names = xpnet.available_backends()
    assert names[0] == "numpy"
    assert set(names) <= set(xpnet.BACKENDS)


def test_cupy_is_listed_only_with_a_device():
    usable, reason = _backend.backend_status("cupy")
    assert ("cupy" in xpnet.available_backends()) == usable
    if not usable:
        assert reason


def test_set_and_get_backend(monkeypatch, xp, backend):
    monkeypatch.setattr(_backend, "_current_backend", None)
    monkeypatch.delenv("XPNET_BACKEND", raising=False)
    assert xpnet.get_backend() == "numpy"
    monkeypatch.setenv("XPNET_BACKEND", backend)
    assert xpnet.get_backend() == backend
    xpnet.set_backend("numpy")
    assert xpnet.get_backend() == "numpy"
    assert xpnet.namespace() is xpnet.namespace("numpy")


def test_unknown_or_unusable_backend(monkeypatch):
    with pytest.raises(
        ValueError,
        match=r"backend must be one of numpy, array_api_strict, torch, cupy, jax; got .mxnet.",
    ):
        xpnet.set_backend("mxnet")
    monkeypatch.setattr(
        _backend, "backend_status", lambda name: (name == "numpy", "no CUDA device found")
    )
    with pytest.raises(RuntimeError, match=r"cupy: no CUDA device found; available: numpy"):
        xpnet.namespace("cupy")


def test_asarray_and_to_numpy_round_trip(xp, backend):
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    arr = xpnet.asarray(data, backend=backend)
    assert xpnet.backend_of(arr) == backend
    assert arr.dtype == xp.float32
    back = xpnet.to_numpy(arr)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, data)
    as64 = xpnet.asarray([[1, 2]], backend=backend, dtype="float64")
    assert as64.dtype == xp.float64


def test_asarray_moves_between_backends(xp, backend):
    source = xpnet.asarray([1.0, 2.0], backend="array_api_strict")
    moved = xpnet.asarray(source, backend=backend)
    assert xpnet.backend_of(moved) == backend
    np.testing.assert_array_equal(as_np(moved), [1.0, 2.0])


def test_device_random_is_seeded_and_on_device(xp, backend):
    like = xpnet.asarray(np.zeros(3, np.float32), backend=backend)
    a = _backend.DeviceRandom(7).uniform((1000,), like=like)
    b = _backend.DeviceRandom(7).uniform((1000,), like=like)
    assert xpnet.backend_of(a) == backend
    assert a.dtype == like.dtype
    np.testing.assert_array_equal(as_np(a), as_np(b))
    values = as_np(a)
    assert values.min() >= 0.0 and values.max() < 1.0 and 0.4 < values.mean() < 0.6


def test_device_info_describes_every_backend():
    info = _backend.device_info()
    assert set(info) == set(xpnet.BACKENDS)
    assert info["numpy"].startswith(np.__version__)
