"""Forward of every op against the plain-loop NumPy float64 references in ``reference.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import functional as F

from . import reference
from .helpers import as_np, on
from .strategies import window_cases

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _same_type(out, x) -> None:
    """Array type in equals array type out, on the same device."""
    assert type(out) is type(x)
    assert xpnet.backend_of(out) == xpnet.backend_of(x)
    from array_api_compat import device

    assert device(out) == device(x)


@SETTINGS
@given(case=window_cases(), bias=st.booleans())
def test_conv2d_matches_loop(xp, case, bias):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.n, case.c_in, case.h, case.w))
    w = rng.standard_normal((case.c_out, case.c_in, *case.kernel))
    b = rng.standard_normal(case.c_out) if bias else None
    out = F.conv2d(
        on(xp, x),
        on(xp, w),
        None if b is None else on(xp, b),
        stride=case.stride,
        padding=case.padding,
    )
    expected = reference.conv2d(x, w, b, case.stride, case.padding)
    _same_type(out, on(xp, x))
    np.testing.assert_allclose(as_np(out), expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(case=window_cases(pool=True), stride_default=st.booleans())
def test_pools_match_loop(xp, case, stride_default):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.n, case.c_in, case.h, case.w))
    stride = None if stride_default else case.stride
    ref_stride = case.kernel if stride_default else case.stride
    for op, reduce in ((F.max_pool2d, np.max), (F.avg_pool2d, np.mean)):
        out = op(on(xp, x), case.kernel, stride=stride, padding=case.padding)
        expected = reference.pool2d(x, case.kernel, ref_stride, case.padding, reduce)
        _same_type(out, on(xp, x))
        np.testing.assert_allclose(as_np(out), expected, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(
    n=st.integers(1, 4),
    fan_in=st.integers(1, 7),
    fan_out=st.integers(1, 5),
    seed=st.integers(0, 999),
)
def test_linear_matches_loop(xp, n, fan_in, fan_out, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (
        rng.standard_normal((n, fan_in)),
        rng.standard_normal((fan_out, fan_in)),
        rng.standard_normal(fan_out),
    )
    out = F.linear(on(xp, x), on(xp, w), on(xp, b))
    _same_type(out, on(xp, x))
    np.testing.assert_allclose(as_np(out), reference.linear(x, w, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        as_np(F.linear(on(xp, x), on(xp, w))), reference.linear(x, w), rtol=1e-10, atol=1e-12
    )


def test_linear_keeps_leading_dims(xp, rng):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4))
    out = F.linear(on(xp, x), on(xp, w))
    np.testing.assert_allclose(as_np(out), x @ w.T, rtol=1e-12)


@SETTINGS
@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 6),
    scale=st.sampled_from([1.0, 30.0, 1000.0]),
    seed=st.integers(0, 999),
)
def test_softmax_family_matches_loop(xp, rows, cols, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * scale
    for axis in (0, 1, -1):
        np.testing.assert_allclose(
            as_np(F.softmax(on(xp, x), axis=axis)),
            reference.softmax(x, axis),
            rtol=1e-10,
            atol=1e-300,
        )
        expected = np.moveaxis(
            np.moveaxis(x, axis, -1) - np.moveaxis(x, axis, -1).max(-1, keepdims=True), -1, axis
        )
        expected = expected - np.log(np.sum(np.exp(expected), axis=axis, keepdims=True))
        np.testing.assert_allclose(
            as_np(F.log_softmax(on(xp, x), axis=axis)), expected, rtol=1e-10, atol=1e-10
        )
    labels = rng.integers(0, cols, size=rows)
    loss = F.cross_entropy(on(xp, x), on(xp, labels, "int64"))
    assert loss.ndim == 0
    np.testing.assert_allclose(
        float(loss), reference.cross_entropy(x, labels), rtol=1e-9, atol=1e-12
    )


def test_activations_match_reference(xp, rng):
    x = np.concatenate([rng.standard_normal(50) * 5, [-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    np.testing.assert_allclose(as_np(F.relu(on(xp, x))), np.where(x > 0, x, 0.0))
    np.testing.assert_allclose(as_np(F.tanh(on(xp, x))), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(as_np(F.sigmoid(on(xp, x))), reference.sigmoid(x), rtol=1e-14)


def test_sigmoid_has_no_overflow_in_float32(xp):
    import warnings

    x = on(xp, np.array([-1e4, -100.0, 0.0, 100.0, 1e4]), "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = as_np(F.sigmoid(x))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


def test_softmax_is_stable_for_huge_logits(xp):
    x = on(xp, np.array([[1e4, 1e4 - 1.0, -1e4]]), "float32")
    out = as_np(F.softmax(x))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(as_np(F.log_softmax(x))))


def test_mse_loss(xp, rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(
        float(F.mse_loss(on(xp, a), on(xp, b))), np.mean((a - b) ** 2), rtol=1e-12
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(xp, rng, dtype):
    x = on(xp, rng.standard_normal((2, 3, 6, 6)), dtype)
    w = on(xp, rng.standard_normal((4, 3, 3, 3)), dtype)
    outputs = [
        F.conv2d(x, w, padding=1),
        F.max_pool2d(x, 2),
        F.avg_pool2d(x, 2),
        F.relu(x),
        F.sigmoid(x),
        F.tanh(x),
        F.softmax(x),
        F.log_softmax(x),
    ]
    for out in outputs:
        assert out.dtype == x.dtype


def test_max_pool_ties_pick_the_first_maximum(xp):
    x = on(xp, np.ones((1, 1, 2, 2)))
    out, saved = F.max_pool2d_forward(x, 2)
    grad = as_np(F.max_pool2d_backward(out * 0.0 + 1.0, saved))
    np.testing.assert_array_equal(grad, [[[[1.0, 0.0], [0.0, 0.0]]]])
