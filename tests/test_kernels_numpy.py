"""What only the NumPy kernels promise: dispatch rules, memory layouts, bit-exact selects."""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import functional as F
from xpnet.kernels import _compiled, backward_for, kernel_for, use_fast_paths, winograd
from xpnet.kernels import numpy as numpy_kernels
from xpnet.kernels.winograd import WinogradTiles


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


# --------------------------------------------------------------------------------------------
# The optional compiled loops (xpnet[numba]): which kernels take them, and Winograd's error
# --------------------------------------------------------------------------------------------

needs_numba = pytest.mark.skipif(
    _compiled.loops is None, reason="no compiled loops (numba not installed, or XPNET_NUMBA=0)"
)


@pytest.fixture
def compiled(monkeypatch):
    """Whether the compiled loops are on, switchable inside a test."""

    def switch(on: bool) -> None:
        monkeypatch.setattr(_compiled, "ENABLED", on)

    return switch


@pytest.fixture
def winograd_first(monkeypatch):
    """Winograd for every 3x3 stride-1 layer it takes, whatever the direct loops would."""
    from xpnet.kernels import direct

    monkeypatch.setattr(direct, "beats_winograd", lambda *shape: False)


@needs_numba
def test_direct_convolution_takes_float32_layers_of_8_or_more_channels_out(compiled):
    """The direct loops (:mod:`xpnet.kernels.direct`) run float32 layers of 8 or more
    output channels that Winograd does not take (first layers too); float64, fewer output
    channels and a run without the compiled loops go to im2col, whose saved columns are
    an ndarray."""
    from xpnet.kernels.direct import DirectInput

    compiled(True)
    x = np.ones((2, 16, 9, 9), dtype=np.float32)
    for kernel, stride, c_in, c_out in [(5, 1, 16, 32), (7, 2, 16, 24), (3, 2, 16, 32), (5, 1, 1, 8), (3, 1, 1, 32)]:  # fmt: skip
        weight = np.ones((c_out, c_in, kernel, kernel), np.float32)
        saved = F.conv2d_forward(x[:, :c_in], weight, stride=stride)[1]
        assert isinstance(saved.cols, DirectInput)
    # 3x3 stride 1: Winograd for many channel pairs and positions, the loops otherwise
    wide = np.ones((32, 32, 3, 3), np.float32)
    big_batch = np.ones((64, 32, 9, 9), np.float32)  # 64 * 7 * 7 = 3136 positions, padded 5184
    assert isinstance(F.conv2d_forward(big_batch, wide, padding=1)[1].cols, WinogradTiles)
    assert isinstance(F.conv2d_forward(big_batch[:2], wide, padding=1)[1].cols, DirectInput)
    few_pairs = np.ones((32, 16, 3, 3), np.float32)
    assert isinstance(F.conv2d_forward(big_batch[:, :16], few_pairs)[1].cols, DirectInput)
    for x_, weight in [
        (x.astype(np.float64), np.ones((32, 16, 5, 5))),  # float64
        (x, np.ones((6, 16, 5, 5), np.float32)),  # too few output channels
    ]:
        assert isinstance(F.conv2d_forward(x_, weight)[1].cols, np.ndarray)
    compiled(False)
    assert isinstance(F.conv2d_forward(x, np.ones((32, 16, 5, 5), np.float32))[1].cols, np.ndarray)


@needs_numba
def test_winograd_takes_3x3_stride_1_convolutions_with_4_or_more_channels(compiled):
    x = np.ones((1, 4, 6, 6), dtype=np.float32)
    compiled(True)
    assert isinstance(F.conv2d_forward(x, np.ones((2, 4, 3, 3), np.float32))[1].cols, WinogradTiles)
    for weight, stride in [(np.ones((2, 4, 3, 3)), 2), (np.ones((2, 4, 5, 5)), 1)]:
        saved = F.conv2d_forward(x, weight.astype(np.float32), stride=stride)[1]
        assert not isinstance(saved.cols, WinogradTiles)
    one_channel = F.conv2d_forward(x[:, :1], np.ones((2, 1, 3, 3), np.float32))[1]
    assert not isinstance(one_channel.cols, WinogradTiles)
    compiled(False)  # without the compiled loops: im2col
    assert not isinstance(
        F.conv2d_forward(x, np.ones((2, 4, 3, 3), np.float32))[1].cols, WinogradTiles
    )


def _conv_reference(x, w, b, padding):
    """conv2d in float64, as a sum over the 9 kernel offsets (3x3 kernel, stride 1)."""
    n, c, h, width = x.shape
    k = w.shape[0]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = h + 2 * padding - 2, width + 2 * padding - 2
    out = np.zeros((n, k, oh, ow)) + b.astype(np.float64)[:, None, None]
    for ky in range(3):
        for kx in range(3):
            window = xp[:, :, ky : ky + oh, kx : kx + ow]
            out += np.einsum("nchw,kc->nkhw", window, w[:, :, ky, kx].astype(np.float64))
    return out


@needs_numba
@pytest.mark.parametrize(
    ("c_in", "c_out", "side", "padding"),
    [(4, 3, 7, 1), (16, 32, 14, 1), (32, 64, 14, 1), (64, 64, 9, 0)],
)
def test_winograd_float32_error_against_float64(
    compiled, winograd_first, c_in, c_out, side, padding
):
    """F(2x2, 3x3) in float32 stays within a few float32 roundings of the exact sum: the
    worst error relative to the output's largest value is below 1e-6 (measured: 2e-7 to
    5e-7; the direct im2col sum: 1e-7 to 3e-7)."""
    compiled(True)
    rng = np.random.default_rng(c_in + side)
    x = rng.standard_normal((3, c_in, side, side)).astype(np.float32)
    w = (rng.standard_normal((c_out, c_in, 3, 3)) / np.sqrt(9 * c_in)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    out, saved = F.conv2d_forward(x, w, b, padding=padding)
    assert isinstance(saved.cols, WinogradTiles)
    exact = _conv_reference(x, w, b, padding)
    error = np.abs(out - exact).max() / np.abs(exact).max()
    assert error < 1e-6, error


@needs_numba
def test_winograd_in_blocks_of_images_equals_one_block(compiled, winograd_first, monkeypatch):
    """The batch cut into blocks (here 3 blocks of 2, 2 and 1 images): the same output
    and gradients as one block within a few float32 roundings (OpenBLAS's products round
    differently for different numbers of rows), and the float64 reference's output."""
    compiled(True)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 6, 9, 8)).astype(np.float32)
    w = (rng.standard_normal((10, 6, 3, 3)) / np.sqrt(54)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    grad = rng.standard_normal((5, 10, 9, 8)).astype(np.float32)
    results = {}
    for block_bytes in (2**40, 16 * 20 * 10 * 4 * 2):  # 20 tiles an image, 10 channels
        monkeypatch.setattr(winograd, "BLOCK_BYTES", block_bytes)
        assert len(winograd.image_blocks(5, 20, 10, 4)) == (1 if block_bytes == 2**40 else 3)
        out, saved = F.conv2d_forward(x, w, b, padding=1)
        results[block_bytes] = (out, *F.conv2d_backward(grad, saved))
    (out1, gx1, gw1, gb1), (out3, gx3, gw3, gb3) = results.values()
    for blocks, one in [(out3, out1), (gx3, gx1), (gw3, gw1), (gb3, gb1)]:
        np.testing.assert_allclose(blocks, one, rtol=1e-5, atol=1e-6 * np.abs(one).max())
    np.testing.assert_allclose(out3, _conv_reference(x, w, b, 1), rtol=1e-4, atol=1e-5)
    out, saved = F.conv2d_forward(x[:0], w, b, padding=1)  # no images: no blocks
    assert out.shape == (0, 10, 9, 8) and saved.cols.x_nhwc.shape == (0, 9, 8, 6)
    grad_x, grad_w, grad_b = F.conv2d_backward(grad[:0], saved)
    assert grad_x.shape == (0, 6, 9, 8)
    assert not grad_w.any() and not grad_b.any()


@needs_numba
@pytest.mark.parametrize(
    ("rows", "depth", "columns"),
    [(1, 4, 16), (7, 16, 16), (130, 32, 48), (301, 12, 32), (45, 24, 16)],
)
def test_compiled_products_against_float64(rows, depth, columns):
    """The register-blocked products (:mod:`xpnet.kernels.numba_products`), ``a @ b`` and
    ``a^T @ b`` for each of the first axis's matrices, against float64 ``matmul``: row
    counts with a remainder (not a multiple of the block's rows), spans of ``a^T @ b`` (128 rows) plus a
    remainder, and matrices that are slices of a wider block (as the last block of images
    is), so not one contiguous array."""
    from xpnet.kernels import numba_products

    rng = np.random.default_rng(rows + depth)
    wide = rng.standard_normal((3, rows + 5, depth)).astype(np.float32)
    a = wide[:, :rows]  # each a[p] C-contiguous, a itself not
    b = rng.standard_normal((3, depth, columns)).astype(np.float32)
    out = np.full((3, rows, columns), np.nan, dtype=np.float32)
    numba_products.products(a, b, out)
    exact = a.astype(np.float64) @ b
    np.testing.assert_allclose(out, exact, rtol=0, atol=1e-6 * depth * np.abs(exact).max())
    grad = rng.standard_normal((3, rows, columns)).astype(np.float32)
    if depth % numba_products.ROWS == 0:  # a's columns are the rows of a^T @ grad: in blocks
        out_t = np.full((3, depth, columns), np.nan, dtype=np.float32)
        numba_products.products_at(a, grad, out_t)
        exact_t = np.permute_dims(a.astype(np.float64), (0, 2, 1)) @ grad
        np.testing.assert_allclose(out_t, exact_t, rtol=0, atol=1e-6 * rows * np.abs(exact_t).max())
    assert numba_products.fits(rows, columns, transposed=False)
    assert not numba_products.fits(rows, 24, transposed=False)
    assert not numba_products.fits(6, 16, transposed=True)


@needs_numba
def test_winograd_compiled_products_equal_blas(compiled, winograd_first, monkeypatch):
    """A 16 -> 16 layer (its products compiled) forward and backward with the compiled
    products and with ``np.matmul``'s: equal within float32 rounding."""
    compiled(True)
    from xpnet.kernels import numba_loops

    calls = []
    for name in ("products", "products_at"):
        original = getattr(numba_loops, name)
        monkeypatch.setattr(
            numba_loops, name, lambda *a, original=original: calls.append(1) or original(*a)
        )
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 16, 9, 8)).astype(np.float32)
    w = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    grad = rng.standard_normal((5, 16, 9, 8)).astype(np.float32)
    results = {}
    for on in (True, False):
        monkeypatch.setattr(winograd, "USE_COMPILED_PRODUCTS", on)
        calls.clear()
        out, saved = F.conv2d_forward(x, w, b, padding=1)
        results[on] = (out, *F.conv2d_backward(grad, saved))
        assert len(calls) == (3 if on else 0)  # forward, weight and input gradients
    for got, blas in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(got, blas, rtol=1e-5, atol=1e-5 * np.abs(blas).max())


def test_winograd_blocks_of_images():
    """Blocks of about BLOCK_BYTES of tiles cover the batch in order; where an image's
    tiles take a multiple of 1 KiB in each tile point's array, an odd number of images."""
    for n, tiles, channels in [(128, 49, 16), (128, 16, 32), (128, 49, 32), (5, 16, 32), (0, 4, 4)]:
        blocks = winograd.image_blocks(n, tiles, channels, 4)
        assert [i for block in blocks for i in block] == list(range(n))
        size = len(blocks[0]) if blocks else 0
        assert size <= max(1, winograd.BLOCK_BYTES // (16 * tiles * channels * 4))
        if tiles * channels * 4 % 1024 == 0 and n > 1:
            assert size % 2 == 1
    assert [len(b) for b in winograd.image_blocks(128, 16, 32, 4)] == [63, 63, 2]
    assert [len(b) for b in winograd.image_blocks(128, 49, 16, 4)] == [41, 41, 41, 5]


@needs_numba
def test_compiled_pool_and_relu_equal_the_numpy_passes(compiled):
    """One-pass loops against the NumPy kernels' passes, bit for bit, ties included."""
    rng = np.random.default_rng(3)
    values = np.maximum(np.round(rng.standard_normal((3, 6, 9, 8)) * 2), 0).astype(np.float32)
    x = np.ascontiguousarray(values).transpose(0, 3, 1, 2)  # channels-last memory
    grad = rng.standard_normal((3, 8, 3, 4)).astype(np.float32)
    results = {}
    for on in (True, False):
        compiled(on)
        out, saved = F.max_pool2d_forward(x, 2)
        relu_out, relu_saved = F.relu_forward(x - 1)
        results[on] = (
            out,
            saved.argmax,
            F.max_pool2d_backward(grad, saved),
            relu_out,
            F.relu_backward(x, relu_saved),
        )
    for got, ref in zip(results[True], results[False], strict=True):
        np.testing.assert_array_equal(got, ref)
        assert got.strides == ref.strides or got.flags.c_contiguous == ref.flags.c_contiguous


def _batch_norm_reference(x, weight, bias, running, grad, training, eps=1e-5):
    """Batch norm of NCHW ``x`` and its gradients (x, weight, bias) in float64."""
    x, grad = x.astype(np.float64), grad.astype(np.float64)
    axes, count = (0, 2, 3), x.size // x.shape[1]
    mean = x.mean(axis=axes) if training else running[0].astype(np.float64)
    var = x.var(axis=axes) if training else running[1].astype(np.float64)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mean[:, None, None]) * inv_std[:, None, None]
    scale = np.ones_like(mean) if weight is None else weight.astype(np.float64)
    out = x_hat * scale[:, None, None] + (0 if bias is None else bias[:, None, None])
    grad_bias, grad_weight = grad.sum(axis=axes), (grad * x_hat).sum(axis=axes)
    a = (scale * inv_std)[:, None, None]
    grad_x = a * grad
    if training:
        grad_x -= a * (grad_weight[:, None, None] * x_hat + grad_bias[:, None, None]) / count
    stats = (mean, x.var(axis=axes, ddof=1)) if training else ()
    gradients = (grad_x, grad_weight, grad_bias) if weight is not None else (grad_x, grad_bias)
    return (out, *stats, *gradients)


@needs_numba
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_compiled_batch_norm_against_float64(compiled, training, affine):
    """The compiled sweeps against float64, on channels far from 0 (mean 30, spread 1: a
    float32 variance taken as E[x^2] - E[x]^2 would be off by about 1e-3). The sums run in
    float64 over float32 blocks: every result is within 1e-5 of float64's, relative to its
    largest value (the float32 mean's own rounding moves x_hat by about 2e-6)."""
    rng = np.random.default_rng(11)
    x64 = 30 + rng.standard_normal((64, 6, 13, 11))
    x = np.ascontiguousarray(x64.transpose(0, 2, 3, 1)).astype(np.float32).transpose(0, 3, 1, 2)
    weight, bias = rng.standard_normal((2, 6)).astype(np.float32) if affine else [None, None]
    running = (np.full(6, 30, np.float32), np.full(6, 2, np.float32))
    grad = rng.standard_normal(x.shape).astype(np.float32)
    expected = _batch_norm_reference(x, weight, bias, running, grad, training)
    compiled(True)
    out, saved = F.batch_norm_forward(
        x, weight, bias, running_mean=running[0], running_var=running[1], training=training
    )
    assert saved.made_by == "numpy"
    stats = (saved.mean, saved.var_unbiased) if training else ()
    gradients = [g for g in F.batch_norm_backward(grad, saved) if g is not None]
    for got, ref in zip((out, *stats, *gradients), expected, strict=True):
        assert got.dtype == np.float32
        error = np.abs(got - ref).max() / np.abs(ref).max()
        assert error < 1e-5, error


@pytest.mark.parametrize("compiled_on", [True, False])
def test_a_gradient_of_the_wrong_shape_is_an_error_not_a_crash(compiled, compiled_on):
    """The compiled loops index without bounds checks: the shapes are checked before."""
    compiled(compiled_on and _compiled.loops is not None)
    x = np.ones((2, 4, 6, 6), dtype=np.float32)
    _, conv_saved = F.conv2d_forward(x, np.ones((3, 4, 3, 3), np.float32))
    _, pool_saved = F.max_pool2d_forward(x, 2)
    _, avg_saved = F.avg_pool2d_forward(x, 2)
    relu_out, relu_saved = F.relu_forward(x)
    wrong = np.ones((2, 3, 5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"conv2d_backward: grad_out must have .* \(2, 3, 4, 4\)"):
        F.conv2d_backward(wrong, conv_saved)
    with pytest.raises(
        ValueError, match=r"max_pool2d_backward: .* \(2, 4, 3, 3\); got \(2, 3, 5, 4\)"
    ):
        F.max_pool2d_backward(wrong, pool_saved)
    with pytest.raises(ValueError, match="avg_pool2d_backward: grad_out"):
        F.avg_pool2d_backward(wrong, avg_saved)
    with pytest.raises(ValueError, match="relu_backward: grad_out"):
        F.relu_backward(wrong, relu_saved)


@needs_numba
def test_compiled_tile_transforms_are_the_winograd_matrices():
    """Each compiled transform, on random tiles, against the matrices of F(2x2, 3x3) it
    spells out as adds: V = B^T d B, Y = A^T M A, dM = A dY A^T; d(input) = B dV B^T as
    the (16, 16) matrix INPUT_GRAD and as its adds, and the windows' overlapping adds."""
    from xpnet.kernels.numba_loops import (
        add_windows,
        transform_grad,
        transform_input,
        transform_output,
        transform_window_grad,
    )
    from xpnet.kernels.winograd import A_T, B_T, INPUT_GRAD

    rng = np.random.default_rng(5)
    d = rng.standard_normal((1, 4, 4, 3))  # one padded 4x4 image: one tile, 3 channels
    v = np.empty((16, 1, 1, 1, 3))
    transform_input(d, v)
    expected = np.einsum("ar,nrsc,bs->abc", B_T, d, B_T).reshape(16, 3)
    np.testing.assert_allclose(v.reshape(16, 3), expected, rtol=1e-13, atol=1e-13)

    m = rng.standard_normal((16, 1, 1, 1, 3))
    y = np.empty((1, 2, 2, 3))
    transform_output(m, np.zeros(0), y)
    expected = np.einsum("ya,abc,xb->yxc", A_T, m.reshape(4, 4, 3), A_T)
    np.testing.assert_allclose(y[0], expected, rtol=1e-13, atol=1e-13)

    g = rng.standard_normal((1, 2, 2, 3))
    dm = np.empty((16, 1, 1, 1, 3))
    transform_grad(g, dm)
    expected = np.einsum("ya,nyxc,xb->abc", A_T, g, A_T).reshape(16, 3)
    np.testing.assert_allclose(dm.reshape(16, 3), expected, rtol=1e-13, atol=1e-13)

    dv = rng.standard_normal((16, 3))
    expected = np.einsum("ar,abc,bs->rsc", B_T, dv.reshape(4, 4, 3), B_T)
    np.testing.assert_allclose((INPUT_GRAD @ dv).reshape(4, 4, 3), expected, rtol=1e-13, atol=1e-13)
    # the backward's adds for INPUT_GRAD, on several tiles of several images
    dv = rng.standard_normal((16, 2, 3, 2, 5))
    windows = np.full_like(dv, np.nan)
    transform_window_grad(dv, windows)
    expected = (INPUT_GRAD @ dv.reshape(16, -1)).reshape(dv.shape)
    np.testing.assert_allclose(windows, expected, rtol=1e-13, atol=1e-13)

    # the windows of a 2x2 tile grid (stride 2, padding 1) added into a 5x5 image
    e = rng.standard_normal((16, 1, 2, 2, 3))
    dx = np.full((1, 5, 5, 3), np.nan)  # add_windows zeroes it first
    add_windows(e, 1, 1, dx)
    expected = np.zeros((1, 7, 7, 3))  # padded
    for ty in range(2):
        for tx in range(2):
            window = e[:, 0, ty, tx].reshape(4, 4, 3)
            expected[0, 2 * ty : 2 * ty + 4, 2 * tx : 2 * tx + 4] += window
    np.testing.assert_allclose(dx, expected[:, 1:6, 1:6], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("compiled_on", [True, False])
def test_mnist_resnet_float32_gradients_against_float64(compiled, compiled_on):
    """One step of ``mnist_resnet`` on real MNIST images (many zero pixels: BatchNorm's
    sums cancel), its float32 parameter gradients on the compiled path against the generic
    path in float64: within 5e-5 of each gradient's largest value, with the compiled loops
    and without (measured 6.5e-6 at batch 128; float32 ``ones @ rows`` BatchNorm sums, as
    the NumPy kernel had them, were off by 2.7e-3)."""
    if compiled_on and _compiled.loops is None:
        pytest.skip("no compiled loops (numba not installed, or XPNET_NUMBA=0)")
    compiled(compiled_on)
    import xpnet
    from xpnet import models, nn
    from xpnet.datasets import load_mnist

    (x, y), _ = load_mnist(normalize=True)
    x, y = x[:128], y[:128]

    def gradients(dtype: str, fast: bool) -> list[np.ndarray]:
        model = models.build("mnist_resnet", seed=0).to("numpy", dtype=dtype)
        loss = nn.CrossEntropyLoss()
        with xpnet.use_fast_paths(fast):
            loss(model(x.astype(dtype)), y)
            model.backward(loss.backward(), input_grad=False)
        return [np.asarray(p.grad, dtype=np.float64) for p in model.parameters()]

    for got, ref in zip(gradients("float32", True), gradients("float64", False), strict=True):
        assert np.abs(got - ref).max() <= 5e-5 * np.abs(ref).max()


@needs_numba
def test_direct_loops_give_the_same_sums_cut_into_any_number_of_parts():
    """The direct loops split their work into ``parts`` (one a thread; the suite runs them
    on one thread, ``XPNET_LOOP_THREADS=1``): forward and weight gradient cut into 1, 2
    and 5 parts give the same results (the forward bit for bit; the weight gradient's
    float64 sum of float32 runs to float32 rounding)."""
    from xpnet.kernels import direct, numba_direct

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 11, 16)).astype(np.float32)
    weight = rng.standard_normal((32, 16, 5, 3)).astype(np.float32)
    x_padded = direct.pad_input(x, (2, 1))
    rows, bias = direct.window_rows(weight), rng.standard_normal(32).astype(np.float32)
    outs, grads = [], []
    for parts in (1, 2, 5):
        out = np.empty((3, 4, 6, 32), dtype=np.float32)  # stride 2
        numba_direct.conv_forward(x_padded, rows, bias, (2, 2), parts, out)
        sums = np.zeros((5, 48, 32))
        numba_direct.conv_weight_grad(
            x_padded.reshape(-1), x_padded.shape, out, (2, 2), parts, sums
        )
        outs.append(out)
        grads.append(sums)
    for out, sums in zip(outs[1:], grads[1:], strict=True):
        np.testing.assert_array_equal(out, outs[0])
        np.testing.assert_allclose(sums, grads[0], rtol=1e-5, atol=1e-5 * np.abs(grads[0]).max())
