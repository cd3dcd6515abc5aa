"""What only the NumPy kernels promise: dispatch rules, memory layouts, bit-exact selects."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import functional as F
from xpnet.kernels import backward_for, kernel_for, use_fast_paths
from xpnet.kernels import numpy as numpy_kernels


def test_kernels_only_for_plain_numpy_arrays_and_switchable():
    torch = pytest.importorskip("torch")
    assert kernel_for("conv2d_forward", np.ones(2), None) is numpy_kernels.conv2d_forward
    assert kernel_for("conv2d_forward", torch.ones(2)) is None
    assert kernel_for("conv2d_forward", np.ones(2), torch.ones(2)) is None
    assert kernel_for("conv2d_forward", np.ma.ones(2)) is None  # a subclass: not plain
    assert kernel_for("no_such_op", np.ones(2)) is None
    with use_fast_paths(False):
        assert kernel_for("conv2d_forward", np.ones(2)) is None
    assert kernel_for("conv2d_forward", np.ones(2)) is numpy_kernels.conv2d_forward


def test_saved_state_names_the_implementation_that_made_it():
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    assert F.conv2d_forward(x, w)[1].made_by == "numpy"
    with use_fast_paths(False):
        generic = F.conv2d_forward(x, w)[1]
    assert generic.made_by is None
    assert backward_for("conv2d_backward", generic) is None
    with pytest.raises(RuntimeError, match="no conv2d_sideways"):
        backward_for("conv2d_sideways", generic._replace(made_by="numpy"))


def test_backward_of_a_kernel_forward_works_with_kernels_off():
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


def test_kernel_outputs_are_channels_last_and_chain_without_copies():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    out = F.conv2d(x, rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    assert out.shape == (2, 4, 6, 6)
    assert np.transpose(out, (0, 2, 3, 1)).flags.c_contiguous
    assert numpy_kernels.channels_last(out).base is not None  # a view, no copy


def test_max_pool_backward_keeps_the_input_layout():
    rng = np.random.default_rng(4)
    for channels_last in (False, True):
        x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
        if channels_last:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        out, saved = F.max_pool2d_forward(x, 2)
        grad = F.max_pool2d_backward(np.ones(out.shape, dtype=np.float32), saved)
        assert numpy_kernels.is_channels_last(grad) == channels_last


def test_zero_where_is_bit_exact():
    values = np.array([1.5, np.nan, -np.inf, -0.0, 2.0], dtype=np.float32)
    drop = np.array([True, False, False, False, True])
    result = numpy_kernels.zero_where(drop, values)
    expected = np.where(drop, np.float32(0), values)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result.view(np.uint32), expected.view(np.uint32))


def test_select_is_a_bit_exact_where():
    rng = np.random.default_rng(7)
    a = rng.standard_normal(50).astype(np.float32)
    b = rng.standard_normal(50).astype(np.float32)
    a[:3], b[3:6] = [np.nan, np.inf, -0.0], [np.nan, -np.inf, -0.0]
    condition = rng.random(50) < 0.5
    expected = np.where(condition, a, b)
    np.testing.assert_array_equal(
        numpy_kernels.select(condition, a, b).view(np.uint32), expected.view(np.uint32)
    )


def test_both_col2im_methods_agree():
    """The banded col2im (5x5, 2-16 input channels) and the offset-by-offset one."""
    rng = np.random.default_rng(8)
    grad_rows = rng.standard_normal((3, 8 * 8, 5))
    weight = rng.standard_normal((5, 4, 5, 5))
    banded = numpy_kernels.col2im_banded(grad_rows, weight, (12, 12), 1, (8, 8))
    by_offset = numpy_kernels.col2im_rows(grad_rows, weight[:, :1], (12, 12), (1, 1), (8, 8))
    assert banded.shape == (3, 12, 12, 4) and by_offset.shape == (3, 12, 12, 1)
    with use_fast_paths(False):  # the generic col2im of the same sum, via conv2d_backward
        x = rng.standard_normal((3, 4, 12, 12))
        _, saved = F.conv2d_forward(x, weight)
        grad_out = np.transpose(grad_rows.reshape(3, 8, 8, 5), (0, 3, 1, 2))
        generic = F.conv2d_backward(grad_out, saved)[0]
    np.testing.assert_allclose(np.transpose(banded, (0, 3, 1, 2)), generic, atol=1e-10)
