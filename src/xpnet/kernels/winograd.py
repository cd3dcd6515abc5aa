"""Winograd minimal filtering F(2x2, 3x3): 3x3 stride-1 convolutions on NumPy, fwd and bwd.

Lavin and Gray (2016), "Fast Algorithms for Convolutional Neural Networks". Each 2x2 block
of outputs is computed from the 4x4 input tile under it (tiles overlap by 2) as

    Y = A^T [ (G g G^T) (*) (B^T d B) ] A         ((*): elementwise, summed over C_in)

so a layer is 16 independent matrix products, one per point ``t`` of the 4x4 transformed
tile: ``M[t] = V[t] @ U[t]``, with ``V`` the transformed input tiles (tiles, C_in) and
``U`` the transformed weights (C_in, C_out). That is 16 multiply-adds per 4 outputs and
input channel instead of 36 (2.25x fewer), and the input is expanded 4x instead of 9x.

The backward pass is the forward's transpose, in the same transformed space:

- ``dM = A dY A^T`` (the output transform's transpose, on the output gradient);
- ``dU[t] = V[t]^T @ dM[t]`` and ``d(weight) = G^T dU G`` (16 products; ``V`` transformed
  again from the saved input, block by block, where it was kept whole: 4x less memory
  saved, and the training step of ``mnist_resnet`` in 0.96x the time);
- ``dV[t] = dM[t] @ U[t]^T``, and ``d(input) = B dV B^T`` (the (16, 16) matrix
  :data:`INPUT_GRAD`, spelled out as adds by ``numba_loops.transform_window_grad``) added
  tile by tile into the overlapping 4x4 input windows;
- the bias rides on the tile point (1, 1), whose output transform adds it to all four
  outputs: it is added to ``M[1, 1]``, and its gradient is the sum of ``dM[1, 1]``.

The matrices hold only 0, +-1 and +-1/2, so the transforms of tiles are adds and
subtracts: :mod:`xpnet.kernels.numba_loops` does four in one compiled pass each. The matrix
products run on :mod:`xpnet.kernels.numba_products`' register-blocked loop for layers of
few channels (:data:`COMPILED_PRODUCTS_MAX`), where OpenBLAS is slow on products this thin,
and on BLAS otherwise (:func:`products`); the weights' transforms (small) are here.
Spelled as NumPy adds of whole strided slices, the tile transforms took about 60 passes over memory and the layer was no
faster than im2col (default model's size, 32->64 channels at 14x14, batch 128: 30.6 vs
31.6 ms fwd+bwd, PyTorch 18.5), so this path runs only with the compiled loops
(:func:`applies`).
"""

from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

import numpy as np

from .._typing import IntPair
from . import _compiled

# The transform matrices of F(2x2, 3x3): input B^T (4x4), weight G (4x3), output A^T (2x4).
# numba_loops spells B^T and A^T out as adds (tests/test_kernels_numpy.py checks them against
# these matrices); G is applied here.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

INPUT_GRAD = np.kron(B_T.T, B_T.T)
"""B dV B^T as one (16, 16) matrix on the 16 tile points (row-major 4x4 windows and
tiles): ``windows = INPUT_GRAD @ dV`` for every tile and channel. The backward runs it as
adds (``numba_loops.transform_window_grad``, tested against this matrix): 0.24-0.40x the
product's time on 16 and 32 channels at 14x14."""

BIAS_POINT = 5
"""Tile point (1, 1): ``A_T[:, 1]`` is all ones, so a value there reaches all 4 outputs."""

MIN_CHANNELS = 4
"""Fewer input channels make products too thin to gain (a one-channel first layer stays
im2col, which measured 0.5x PyTorch's time there)."""


BLOCK_BYTES = 2**21
"""About how many bytes of transformed tiles (V or M, whichever is wider) one block of
images takes through the transform -> products -> transform chain (:func:`image_blocks`;
2^20 and 2^21 measured best, 2^18 1.2-1.6x slower: the products' per-call cost)."""

COMPILED_PRODUCTS_MAX = 32 * 32
"""Layers of up to this many channel pairs (C_in * C_out) take the compiled products
(:func:`products`) when the loops run on one thread; on one core they beat OpenBLAS's two
there, and lost to them on 32 -> 64 channels (docs/history.md, sixth pass). Where
the loops have every core (:func:`xpnet.kernels._compiled.owns_cores`), every layer takes
them: BLAS is then on one thread."""

USE_COMPILED_PRODUCTS = True
"""Whether :func:`products` may take the compiled loop at all (switchable to compare it
with BLAS, as ``tests/test_kernels_numpy.py`` does)."""


def image_blocks(n: int, tiles_per_image: int, channels: int, itemsize: int) -> list[range]:
    """The batch cut into blocks of images whose transformed tiles (16 points x tiles x
    ``channels``) take about :data:`BLOCK_BYTES`, each block taken through the whole chain
    of passes before the next.

    Whole-batch arrays (12.8 MB for M of a 16 -> 32 channel layer at 14x14, batch 128)
    were fresh memory at every call; blocks took that layer's forward + backward from 20.1
    to 15.9 ms, 16 -> 16 channels from 18.4 to 12.4 ms and ``mnist_resnet``'s training step
    to 0.92x (in-process alternating pairs). With glibc keeping its freed memory the two are
    about as fast, so most of the gain is page faults saved (about 3.5 us each on the VM
    measured), not cache hits (docs/history.md, third CPU pass).

    Where an image's tiles take a multiple of 1 KiB in each of the 16 tile points' arrays
    (4x4 tiles of 32 float32 channels: 2 KiB), an even number of images would start the 16
    arrays at addresses equal modulo 4 KiB, the same cache sets, and each compiled pass
    over them would evict its own lines: blocks then hold an odd number of images (63, not
    64: the input-gradient transform took 1.8 against 8.5 us an image alone, and the two
    32-channel 7x7 layers of ``mnist_resnet`` 4.5 against 5.1 ms forward, 10.4 against
    11.6 ms backward in the training step)."""
    stream = tiles_per_image * channels * itemsize  # an image's bytes in each tile point's array
    size = max(1, BLOCK_BYTES // max(16 * stream, 1))
    if stream % 1024 == 0 and size % 2 == 0:
        size -= 1  # see above: the 16 tile points' arrays would start at the same cache sets
    return [range(first, min(first + size, n)) for first in range(0, n, size)]


class WinogradTiles(NamedTuple):
    """What the backward needs from the forward: the input, whose tiles it transforms
    again block by block (4x smaller than the transformed tiles V, and V then stays in
    cache between its transform and its products), and the transformed weights."""

    x_nhwc: np.ndarray  # the input, (N, H, W, C_in) view
    weights: np.ndarray  # U: (16, C_in, C_out)


def applies(kernel: IntPair, stride: IntPair, c_in: int) -> bool:
    """Whether F(2x2, 3x3) runs this convolution: 3x3, stride 1, at least
    :data:`MIN_CHANNELS` input channels, and the compiled transforms available."""
    return (
        kernel == (3, 3)
        and stride == (1, 1)
        and c_in >= MIN_CHANNELS
        and _compiled.available() is not None
    )


def transform_weights(weight: np.ndarray) -> np.ndarray:
    """U = G g G^T for every filter: (C_out, C_in, 3, 3) -> (16, C_in, C_out), computed
    in float64 (the weights are small) and rounded once."""
    c_out, c_in = weight.shape[:2]
    # two plain products over all filters at once: g G^T over x, then G (.) over y
    right = (weight.astype(np.float64).reshape(-1, 3) @ G.T).reshape(c_out, c_in, 3, 4)
    u = G @ np.permute_dims(right, (2, 0, 1, 3)).reshape(3, -1)  # (a, C_out*C_in*b)
    u = np.permute_dims(u.reshape(4, c_out, c_in, 4), (0, 3, 2, 1))  # (a, b, C_in, C_out)
    return np.ascontiguousarray(u.reshape(16, c_in, c_out), dtype=weight.dtype)


def weight_gradient(grad_u: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """d(weight) = G^T dU G: (16, C_in, C_out) -> (C_out, C_in, 3, 3), computed in float64
    and rounded once to ``dtype``."""
    c_in, c_out = grad_u.shape[1:]
    du = grad_u.astype(np.float64).reshape(4, 4 * c_in * c_out)
    left = (G.T @ du).reshape(3, 4, c_in, c_out)  # (y, b, C_in, C_out)
    right = np.permute_dims(left, (3, 2, 0, 1)).reshape(-1, 4) @ G  # (C_out*C_in*y, x)
    return np.ascontiguousarray(right.reshape(c_out, c_in, 3, 3), dtype=dtype)


def tile_grid(out_hw: IntPair) -> IntPair:
    """Tiles along each side: one per 2 outputs, rounded up."""
    return -(-out_hw[0] // 2), -(-out_hw[1] // 2)


class _InputTiles:
    """V = B^T d B of a block of images at a time (:func:`image_blocks`), into the same two
    buffers block after block: the padded input (its zero border written once) and V."""

    def __init__(self, x_nhwc: np.ndarray, padding: IntPair, grid: IntPair, block: int) -> None:
        n, self.h, self.w, c_in = x_nhwc.shape
        self.x_nhwc, self.padding, (th, tw) = x_nhwc, padding, grid
        size = min(block, n)
        self.padded = np.zeros((size, 2 * th + 2, 2 * tw + 2, c_in), dtype=x_nhwc.dtype)
        self.v = np.empty((16, size, th, tw, c_in), dtype=x_nhwc.dtype)

    def __call__(self, loops: ModuleType, images: range) -> np.ndarray:
        """The (16, len(images), tiles_h, tiles_w, C_in) tiles of these images, valid
        until the next call."""
        (ph, pw), count = self.padding, len(images)
        padded, v = self.padded[:count], self.v
        if count < v.shape[1]:  # a shorter last block: its own array, C-contiguous as the rest
            v = np.empty((16, count, *v.shape[2:]), dtype=v.dtype)
        padded[:, ph : ph + self.h, pw : pw + self.w] = self.x_nhwc[images.start : images.stop]
        loops.transform_input(padded, v)
        return v


def _blocks(
    x_nhwc: np.ndarray, c_out: int, padding: IntPair, grid: IntPair
) -> tuple[list[range], _InputTiles]:
    """The forward's and the backward's blocks of images, and their input tiles."""
    n, c_in = x_nhwc.shape[0], x_nhwc.shape[3]
    blocks = image_blocks(n, grid[0] * grid[1], max(c_in, c_out), x_nhwc.itemsize)
    return blocks, _InputTiles(x_nhwc, padding, grid, len(blocks[0]) if blocks else 0)


def products(
    loops: ModuleType, a: np.ndarray, b: np.ndarray, *, transposed: bool = False
) -> np.ndarray:
    """The 16 tile points' products ``a[p] @ b[p]`` (``a[p]^T @ b[p]`` if ``transposed``)
    whose matrices ``[p]`` are C-contiguous: the compiled register-blocked loop
    (:mod:`xpnet.kernels.numba_products`) for float32 where its blocks fit the result,
    and its channels are few (:data:`COMPILED_PRODUCTS_MAX`), else ``np.matmul`` (BLAS)."""
    rows = a.shape[2] if transposed else a.shape[1]
    out = np.empty((a.shape[0], rows, b.shape[2]), dtype=np.result_type(a, b))
    channel_pairs = a.shape[2] * b.shape[2]  # C_in * C_out, whichever product this is
    if (
        USE_COMPILED_PRODUCTS
        and out.dtype == np.float32
        and (channel_pairs <= COMPILED_PRODUCTS_MAX or _compiled.owns_cores())
        and loops.fits(rows, b.shape[2], transposed=transposed)
    ):
        assert all(_matrices_contiguous(x) for x in (a, b))
        (loops.products_at if transposed else loops.products)(a, b, out)
    else:
        np.matmul(np.permute_dims(a, (0, 2, 1)) if transposed else a, b, out=out)
    return out


def _matrices_contiguous(x: np.ndarray) -> bool:
    """Whether each ``x[p]`` of 3-D ``x`` is a C-contiguous matrix."""
    return x.strides[2] == x.itemsize and x.strides[1] == x.shape[2] * x.itemsize


def conv2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, padding: IntPair
) -> tuple[np.ndarray, WinogradTiles]:
    """3x3 stride-1 conv2d of NCHW ``x`` (any memory layout): the (N, out_h, out_w, C_out)
    channels-last result and what the backward needs."""
    n, c_in, h, w = x.shape
    c_out = weight.shape[0]
    out_hw = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2)
    th, tw = tile_grid(out_hw)
    u = transform_weights(weight)
    x_nhwc = np.permute_dims(x, (0, 2, 3, 1))
    out = np.empty((n, *out_hw, c_out), dtype=x.dtype)
    bias_or_none = np.empty(0, dtype=x.dtype) if bias is None else bias
    blocks, input_tiles = _blocks(x_nhwc, c_out, padding, (th, tw))
    with _compiled.loop_threads(n * th * tw * 16 * max(c_in, c_out)) as loops:  # V's or M's
        for block in blocks:
            v = input_tiles(loops, block)
            m = products(loops, v.reshape(16, -1, c_in), u)  # (tiles, C_in) @ (C_in, C_out)
            out_block = out[block.start : block.stop]
            loops.transform_output(m.reshape(16, -1, th, tw, c_out), bias_or_none, out_block)
    return out, WinogradTiles(x_nhwc, u)


def conv2d_backward(
    grad_nhwc: np.ndarray,
    tiles: WinogradTiles,
    x_hw: IntPair,
    padding: IntPair,
    *,
    input_grad: bool,
    bias_grad: bool,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d`: input (N, H, W, C_in) channels-last or None, weight
    (C_out, C_in, 3, 3), bias (C_out,) or None; ``grad_nhwc`` is (N, out_h, out_w, C_out)
    in any memory layout. Block by block of images, as the forward."""
    x_nhwc, u = tiles
    n, c_in, c_out = grad_nhwc.shape[0], u.shape[1], u.shape[2]
    th, tw = tile_grid(grad_nhwc.shape[1:3])
    u_t = np.ascontiguousarray(np.permute_dims(u, (0, 2, 1)))
    grad_u = np.zeros((16, c_in, c_out), dtype=np.float64)  # float32 blocks, summed in float64
    grad_bias = np.zeros(c_out, dtype=np.float64) if bias_grad else None
    grad_x = np.empty((n, *x_hw, c_in), dtype=u.dtype) if input_grad else None
    blocks, input_tiles = _blocks(x_nhwc, c_out, padding, (th, tw))
    with _compiled.loop_threads(n * th * tw * 16 * max(c_in, c_out)) as loops:
        for block in blocks:
            images = slice(block.start, block.stop)
            v = input_tiles(loops, block)  # the forward's V, again
            dm = np.empty((16, len(block), th, tw, c_out), dtype=v.dtype)
            loops.transform_grad(grad_nhwc[images], dm)
            dm_rows = dm.reshape(16, -1, c_out)
            grad_u += products(loops, v.reshape(16, -1, c_in), dm_rows, transposed=True)
            if grad_bias is not None:
                grad_bias += dm_rows[BIAS_POINT].sum(axis=0)
            if grad_x is not None:
                dv = products(loops, dm_rows, u_t).reshape(v.shape)
                windows = np.empty_like(dv)
                loops.transform_window_grad(dv, windows)  # B dV B^T of every tile
                loops.add_windows(windows, *padding, grad_x[images])
    grad_weight = weight_gradient(grad_u, u.dtype)
    return grad_x, grad_weight, None if grad_bias is None else grad_bias.astype(u.dtype)
