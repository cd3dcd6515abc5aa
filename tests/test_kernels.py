"""Every registered kernel against the generic op it replaces, driven by the registry.

``xpnet.kernels.registered()`` lists each ``(backend, op)`` that has a kernel; one test runs
each of them on random inputs (shapes, strides, paddings, kernel sizes, float32/float64,
NCHW, channels-last and strided memory, ties, NaN and inf), forward and backward, with the
kernels on and off (``use_fast_paths(False)``: the generic array-API code), and checks that
the kernel really ran. A kernel registered later is tested here without a new test; a new
op name needs its inputs described once in :data:`CASES` (the test fails until it is).
Conv and average-pool results agree to float rounding (sums in another order); everything
else is bit-equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import functional as F
from xpnet.kernels import (
    _compiled,
    _registry,
    fast_paths_enabled,
    registered,
    use_fast_paths,
    winograd,
)

from .strategies import WindowCase, window_cases

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = st.sampled_from(["float32", "float64"])
LAYOUTS = st.sampled_from(["nchw", "channels_last", "strided"])
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 1e4, -1e4]


class Case(NamedTuple):
    """One random input set: ``run(put)`` runs the op forward and backward on the arrays
    that ``put`` moves to the backend under test, returning every result to compare."""

    run: Callable[[Callable[[np.ndarray], Any]], tuple[Any, ...]]
    exact: bool


def _array(rng, shape, dtype, layout="nchw"):
    """Random normal values of ``shape`` (NCHW) in the given memory layout; ``strided`` is
    a view with a step of 2 along the width of a larger array."""
    values = rng.standard_normal(shape).astype(dtype)
    if len(shape) != 4 or layout == "nchw":
        return values
    if layout == "channels_last":
        return np.ascontiguousarray(values.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wide = np.zeros((*shape[:3], 2 * shape[3]), dtype=dtype)
    wide[..., ::2] = values
    return wide[..., ::2]


@st.composite
def winograd_cases(draw) -> WindowCase:
    """3x3 kernels at stride 1 with >= 4 input channels: where the NumPy kernel takes
    Winograd's F(2x2, 3x3) (odd and even output sizes, padding 0 to 2)."""
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    return WindowCase(
        n=draw(st.integers(1, 3)),
        c_in=draw(st.integers(winograd.MIN_CHANNELS, winograd.MIN_CHANNELS + 5)),
        c_out=draw(st.integers(1, 6)),
        h=draw(st.integers(max(1, 3 - 2 * padding[0]), 9)),
        w=draw(st.integers(max(1, 3 - 2 * padding[1]), 9)),
        kernel=(3, 3),
        stride=(1, 1),
        padding=padding,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def direct_cases(draw) -> WindowCase:
    """Where the NumPy kernel takes the direct convolution (float32, C_out >= 8, padded to a
    block of 16 where it does not fill one): C_in a multiple of 16 (the input gradient added in place) or not, ``kW * C_in`` in
    blocks of the micro-kernel's rows or not (the weight gradient's blocks then read on
    past a window row), outputs fewer and more than a block, any stride and padding, sometimes an
    empty batch."""
    kernel = (draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([2, 3, 5, 7])))
    c_in = draw(st.sampled_from([1, 3, 8, 16, 24, 32]))
    padding = tuple(draw(st.integers(0, k - 1)) for k in kernel)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return WindowCase(
        n=draw(st.integers(0, 3)),
        c_in=c_in,
        c_out=draw(st.sampled_from([8, 12, 16, 32, 48])),
        h=draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 12)),
        w=draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 30)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def conv_cases(draw) -> Case:
    case = draw(st.one_of(window_cases(), winograd_cases(), direct_cases()))
    bias, dtype, layout = draw(st.booleans()), draw(DTYPES), draw(LAYOUTS)
    rng = np.random.default_rng(case.seed)
    x = _array(rng, (case.n, case.c_in, case.h, case.w), dtype, layout)
    w = _array(rng, (case.c_out, case.c_in, *case.kernel), dtype)
    b = _array(rng, (case.c_out,), dtype) if bias else None

    def run(put):
        out, saved = F.conv2d_forward(
            put(x), put(w), None if b is None else put(b), stride=case.stride, padding=case.padding
        )
        g = put(_array(np.random.default_rng(case.seed + 1), tuple(out.shape), dtype, layout))
        grads = F.conv2d_backward(g, saved)
        weight_only = F.conv2d_backward(g, saved, input_grad=False)
        return out, *grads, *weight_only

    return Case(run, exact=False)


@st.composite
def pool_cases(draw, op: str) -> Case:
    """Mostly non-overlapping windows (where the NumPy kernels apply), sometimes overlapping
    or padded ones (where they must decline), once in a while more than 256 offsets."""
    kernel = draw(st.sampled_from([(1, 1), (2, 2), (2, 3), (3, 1), (3, 3), (17, 16)]))
    if draw(st.integers(0, 3)) == 0:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    else:
        stride, padding = kernel, (0, 0)
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(kernel[0], 2 * kernel[0] + 2)),
        draw(st.integers(kernel[1], 2 * kernel[1] + 2)),
    )
    dtype, layout, seed = draw(DTYPES), draw(LAYOUTS), draw(st.integers(0, 2**31 - 1))
    values = draw(st.sampled_from(["random", "ties", "nan"]))
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout)
    if values == "ties":  # few distinct values and all-zero windows, as after a ReLU
        x[...] = np.maximum(np.round(x), 0)
    elif values == "nan":
        x[tuple(int(rng.integers(s)) for s in shape)] = np.nan
    forward, backward = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")

    def run(put):
        out, saved = forward(put(x), kernel, stride=stride, padding=padding)
        g = put(_array(np.random.default_rng(seed + 1), tuple(out.shape), dtype, layout))
        return out, saved.argmax, backward(g, saved)

    return Case(run, exact=op == "max_pool2d")


@st.composite
def elementwise_cases(draw, op: str) -> Case:
    dtype, seed = draw(DTYPES), draw(st.integers(0, 2**31 - 1))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 20).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    x.flat[: len(SPECIAL)] = SPECIAL[: x.size]
    g.flat[-3:] = [np.nan, np.inf, -np.inf][: g.size]
    forward, backward = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")

    def run(put):
        out, saved = forward(put(x))
        return out, backward(put(g), saved)

    return Case(run, exact=True)


@st.composite
def batch_norm_cases(draw) -> Case:
    """4-D (where the NumPy kernel applies) and sometimes 2-D input (where it declines),
    training or evaluation, with and without affine parameters, with and without the
    ReLU after it (``relu=True``)."""
    four_d = draw(st.integers(0, 4)) > 0
    shape = (draw(st.integers(2, 4)), draw(st.integers(1, 20)))
    if four_d:
        shape += (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    dtype, layout, seed = draw(DTYPES), draw(LAYOUTS), draw(st.integers(0, 2**31 - 1))
    training, affine, relu = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    rng = np.random.default_rng(seed)
    x = _array(rng, shape, dtype, layout) * 3 + 1
    channels = shape[1]
    params = [_array(rng, (channels,), dtype) for _ in range(2)] if affine else [None, None]
    running = [_array(rng, (channels,), dtype), rng.random(channels).astype(dtype) + 0.5]

    def run(put):
        weight, bias = (None if p is None else put(p) for p in params)
        out, saved = F.batch_norm_forward(
            put(x), weight, bias, running_mean=put(running[0]), running_var=put(running[1]),
            training=training, relu=relu,
        )  # fmt: skip
        g = put(_array(np.random.default_rng(seed + 1), shape, dtype, layout))
        stats = (saved.mean, saved.var_unbiased)
        return (
            out,
            *stats,
            *F.batch_norm_backward(g, saved),
            F.batch_norm_backward(g, saved, input_grad=False)[1],
        )

    return Case(run, exact=False)


CASES: dict[str, st.SearchStrategy[Case]] = {
    "batch_norm_forward": batch_norm_cases(),
    "batch_norm_backward": batch_norm_cases(),
    "conv2d_forward": conv_cases(),
    "conv2d_backward": conv_cases(),
    "max_pool2d_forward": pool_cases("max_pool2d"),
    "max_pool2d_backward": pool_cases("max_pool2d"),
    "avg_pool2d_forward": pool_cases("avg_pool2d"),
    "avg_pool2d_backward": pool_cases("avg_pool2d"),
    "relu_forward": elementwise_cases("relu"),
    "relu_backward": elementwise_cases("relu"),
    "sigmoid_forward": elementwise_cases("sigmoid"),
}
"""The inputs each op's kernels are tested on, by op name."""


def _assert_equal(got: Any, ref: Any, exact: bool, what: str) -> None:
    if ref is None:
        assert got is None, what
        return
    assert type(got) is type(ref), f"{what}: {type(got)} vs {type(ref)}"
    got, ref = xpnet.to_numpy(got), xpnet.to_numpy(ref)
    assert got.shape == ref.shape, what
    if np.issubdtype(ref.dtype, np.integer):  # argmax: same offsets, any index dtype
        np.testing.assert_array_equal(got, ref, err_msg=what)
        return
    assert got.dtype == ref.dtype, what
    if exact:
        np.testing.assert_array_equal(got, ref, err_msg=what)  # NaN == NaN here
        return
    tolerance = 1e-5 if ref.dtype == np.float32 else 1e-12
    scale = max(float(np.nanmax(np.abs(ref), initial=0.0)), 1.0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=tolerance * scale, err_msg=what)


KERNELS = registered()


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "no-numba"])
@pytest.mark.parametrize(("backend", "op"), KERNELS, ids=[f"{b}-{op}" for b, op in KERNELS])
def test_kernel_equals_generic_op(backend, op, compiled, monkeypatch):
    """With the optional compiled loops (``xpnet[numba]``) and without them."""
    usable, reason = xpnet._backend.backend_status(backend)
    if not usable:
        pytest.skip(f"backend {backend} unavailable: {reason}")
    if compiled and _compiled.loops is None:
        pytest.skip("no compiled loops (numba not installed, or XPNET_NUMBA=0)")
    monkeypatch.setattr(_compiled, "ENABLED", compiled)
    assert op in CASES, f"the {backend} kernel for {op!r} has no inputs in CASES: add them"
    calls = []
    kernel = _registry.lookup(backend, op)

    def counting(*args, **kwargs):
        calls.append(op)
        return kernel(*args, **kwargs)

    monkeypatch.setitem(_registry._TABLE, (backend, op), counting)

    def put(array):
        return xpnet.asarray(array, backend=backend)

    @SETTINGS
    @given(case=CASES[op])
    def check(case):
        assert fast_paths_enabled()
        with np.errstate(all="ignore"):  # NaN and inf inputs are on purpose
            with_kernels = case.run(put)
            with use_fast_paths(False):
                generic = case.run(put)
        for index, (got, ref) in enumerate(zip(with_kernels, generic, strict=True)):
            _assert_equal(got, ref, case.exact, f"{backend} {op}: result {index}")

    check()
    assert calls, f"the {backend} kernel for {op} never ran on the generated inputs"
