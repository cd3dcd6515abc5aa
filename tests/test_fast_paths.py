"""The NumPy fast paths (``xpnet/_fast.py``) against the generic array-API code they replace.

Each fast path is run against the generic path (``use_fast_paths(False)``) on the same
random inputs: random shapes, strides, paddings and kernel sizes, float32 and float64,
inputs in NCHW and in channels-last memory, ties and NaN for the pools. Conv results agree
to float rounding (the matrix products sum in another order); everything else is bit-equal.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import _fast
from xpnet import functional as F
from xpnet._backend import fast_kernels, fast_paths_enabled, use_fast_paths

from .strategies import window_cases

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = st.sampled_from(["float32", "float64"])
LAYOUTS = st.sampled_from(["nchw", "channels_last"])


def _array(rng, shape, dtype, layout="nchw"):
    """Random normal values of ``shape`` (NCHW), stored in the given memory layout."""
    values = rng.standard_normal(shape).astype(dtype)
    if layout == "channels_last" and len(shape) == 4:
        return np.ascontiguousarray(values.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return values


def _assert_close(fast, generic, dtype, name):
    assert type(fast) is np.ndarray and fast.dtype == generic.dtype, name
    assert fast.shape == generic.shape, name
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    scale = max(float(np.max(np.abs(generic), initial=0.0)), 1.0)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=tolerance * scale, err_msg=name)


def _both(fn):
    """``fn()`` on the fast path and on the generic path."""
    assert fast_paths_enabled()
    fast = fn()
    with use_fast_paths(False):
        generic = fn()
    return fast, generic


@SETTINGS
@given(case=window_cases(), bias=st.booleans(), dtype=DTYPES, layout=LAYOUTS)
def test_conv2d_fast_path_equals_generic(case, bias, dtype, layout):
    rng = np.random.default_rng(case.seed)
    x = _array(rng, (case.n, case.c_in, case.h, case.w), dtype, layout)
    w = _array(rng, (case.c_out, case.c_in, *case.kernel), dtype)
    b = _array(rng, (case.c_out,), dtype) if bias else None
    g = None

    def run():
        nonlocal g
        out, saved = F.conv2d_forward(x, w, b, stride=case.stride, padding=case.padding)
        g = _array(np.random.default_rng(case.seed + 1), out.shape, dtype, layout)
        grads = F.conv2d_backward(g, saved)
        weight_only = F.conv2d_backward(g, saved, input_grad=False)
        return saved.fast, out, grads, weight_only

    (fast_flag, *fast), (generic_flag, *generic) = _both(run)
    assert fast_flag and not generic_flag
    (out_f, grads_f, weight_only_f), (out_g, grads_g, _) = fast, generic
    _assert_close(out_f, out_g, dtype, "out")
    for name, got, ref in zip(("x", "weight", "bias"), grads_f, grads_g):
        if ref is None:
            assert got is None
        else:
            _assert_close(got, ref, dtype, name)
    assert weight_only_f[0] is None
    _assert_close(weight_only_f[1], grads_g[1], dtype, "weight (input_grad=False)")


@st.composite
def reshape_pool_cases(draw):
    """Non-overlapping windows (stride == kernel, no padding), sides not always divisible."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(kernel[0], 3 * kernel[0] + 2)),
        draw(st.integers(kernel[1], 3 * kernel[1] + 2)),
    )
    return shape, kernel, draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(case=reshape_pool_cases(), dtype=DTYPES, layout=LAYOUTS, ties=st.booleans())
def test_max_pool_fast_path_equals_generic(case, dtype, layout, ties):
    shape, kernel, seed = case
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout)
    if ties:  # few distinct values and all-zero windows, as after a ReLU
        x = np.maximum(np.round(x), 0).astype(dtype)

    def run():
        out, saved = F.max_pool2d_forward(x, kernel)  # stride == kernel, no padding
        g = _array(np.random.default_rng(seed + 1), out.shape, dtype, layout)
        return out, saved.argmax, F.max_pool2d_backward(g, saved)

    fast, generic = _both(run)
    for name, got, ref in zip(("out", "argmax", "grad"), fast, generic):
        assert type(got) is np.ndarray and got.shape == ref.shape, name
        np.testing.assert_array_equal(got, ref, err_msg=name)
    assert fast[2].dtype == generic[2].dtype


@SETTINGS
@given(case=reshape_pool_cases(), dtype=DTYPES, layout=LAYOUTS)
def test_avg_pool_fast_path_equals_generic(case, dtype, layout):
    shape, kernel, seed = case
    x = _array(np.random.default_rng(seed), shape, dtype, layout)

    def run():
        out, saved = F.avg_pool2d_forward(x, kernel)  # stride == kernel, no padding
        g = _array(np.random.default_rng(seed + 1), out.shape, dtype, layout)
        return out, F.avg_pool2d_backward(g, saved)

    (out, grad), (ref_out, ref_grad) = _both(run)
    _assert_close(out, ref_out, dtype, "out")  # NumPy's mean may sum pairwise: rounding
    assert type(grad) is np.ndarray and grad.dtype == ref_grad.dtype
    np.testing.assert_array_equal(grad, ref_grad)


def test_max_pool_fast_path_with_nan_matches_generic():
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2, 3] = np.nan
    fast, generic = _both(lambda: F.max_pool2d_forward(x, 2))
    np.testing.assert_array_equal(fast[0], generic[0])  # NaN where the window holds one
    np.testing.assert_array_equal(fast[1].argmax, generic[1].argmax)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_fast_path_is_bit_equal_including_nan_and_inf(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5, 6)).astype(dtype)
    x.flat[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30]
    g = rng.standard_normal(x.shape).astype(dtype)
    g.flat[6:9] = [np.nan, np.inf, -np.inf]

    def run():
        out = F.relu(x)
        return out, F.relu_backward(g, out)

    fast, generic = _both(run)
    for got, ref in zip(fast, generic):
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
    assert fast[1].flat[0] == g.flat[0]  # the gradient passes a NaN output, as in PyTorch


def test_zero_where_is_bit_exact():
    values = np.array([1.5, np.nan, -np.inf, -0.0, 2.0], dtype=np.float32)
    drop = np.array([True, False, False, False, True])
    result = _fast.zero_where(drop, values)
    expected = np.where(drop, np.float32(0), values)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result.view(np.uint32), expected.view(np.uint32))


def test_fast_outputs_are_channels_last_and_chain_without_copies():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = F.conv2d(x, rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    assert out.shape == (2, 4, 6, 6)
    assert np.transpose(out, (0, 2, 3, 1)).flags.c_contiguous
    assert _fast.channels_last(out).base is not None  # a view, no copy


def test_fast_paths_only_for_numpy_and_switchable():
    torch = pytest.importorskip("torch")
    assert fast_kernels(np.ones(2), None) is _fast
    assert fast_kernels(torch.ones(2)) is None
    assert fast_kernels(np.ones(2), torch.ones(2)) is None
    with use_fast_paths(False):
        assert fast_kernels(np.ones(2)) is None
    assert fast_kernels(np.ones(2)) is _fast


def test_backward_of_a_fast_forward_works_with_fast_paths_off():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 6, 6))
    w = rng.standard_normal((3, 2, 3, 3))
    out, saved = F.conv2d_forward(x, w, padding=1)
    g = rng.standard_normal(out.shape)
    expected = F.conv2d_backward(g, saved)
    with use_fast_paths(False):
        got = F.conv2d_backward(g, saved)
        _, generic_saved = F.conv2d_forward(x, w, padding=1)
        generic = F.conv2d_backward(g, generic_saved)
    assert got[2] is None and generic[2] is None  # no bias
    for a, b, c in zip(got[:2], expected[:2], generic[:2]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_max_pool_with_more_than_256_window_offsets():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 17, 18))
    g = rng.standard_normal((1, 2, 1, 1))
    fast, generic = _both(lambda: F.max_pool2d_backward(g, F.max_pool2d_forward(x, 17)[1]))
    np.testing.assert_array_equal(fast, generic)
    assert np.count_nonzero(fast) == 2


def test_max_pool_backward_keeps_the_input_layout():
    rng = np.random.default_rng(4)
    for layout in ("nchw", "channels_last"):
        x = _array(rng, (2, 3, 4, 4), "float32", layout)
        out, saved = F.max_pool2d_forward(x, 2)
        grad = F.max_pool2d_backward(np.ones(out.shape, dtype=np.float32), saved)
        assert _fast.is_channels_last(grad) == (layout == "channels_last")


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, :, ::-1, :],
        lambda a: a[:, :, ::2, 1::2],
        lambda a: a[:, 1:3],
        lambda a: a[::-1],
    ],
    ids=["flipped rows", "strided", "channel slice", "reversed batch"],
)
def test_fast_paths_take_any_strides(view):
    rng = np.random.default_rng(5)
    x = view(rng.standard_normal((3, 4, 14, 15)).astype(np.float32))
    w = rng.standard_normal((2, x.shape[1], 3, 3)).astype(np.float32)

    def run():
        pooled, pool_saved = F.max_pool2d_forward(x, 2)
        out, saved = F.conv2d_forward(x, w, padding=1)
        return (
            pooled,
            F.max_pool2d_backward(pooled, pool_saved),
            out,
            *F.conv2d_backward(out, saved)[:2],
            F.relu_backward(x, F.relu(x)),
        )

    for got, ref in zip(*_both(run)):
        _assert_close(got, ref, "float32", "strided input")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_fast_path_is_bit_equal(dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3, 4, 5, 6)) * 20).astype(dtype)
    x.flat[:7] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4]
    fast, generic = _both(lambda: F.sigmoid(x))
    assert fast.dtype == generic.dtype
    np.testing.assert_array_equal(fast.view(f"u{x.itemsize}"), generic.view(f"u{x.itemsize}"))


def test_select_is_a_bit_exact_where():
    rng = np.random.default_rng(7)
    a = rng.standard_normal(50).astype(np.float32)
    b = rng.standard_normal(50).astype(np.float32)
    a[:3], b[3:6] = [np.nan, np.inf, -0.0], [np.nan, -np.inf, -0.0]
    condition = rng.random(50) < 0.5
    expected = np.where(condition, a, b)
    np.testing.assert_array_equal(
        _fast.select(condition, a, b).view(np.uint32), expected.view(np.uint32)
    )
