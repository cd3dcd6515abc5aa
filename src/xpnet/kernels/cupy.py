"""CuPy kernels (CUDA): im2col/col2im, max pooling and two elementwise ops, one launch each.

Modelled on Chainer's ``chainer/utils/conv.py`` (``im2col_gpu``, ``col2im_gpu``) and its
max-pooling kernels: one CUDA thread per output element; col2im and the max-pool backward
*gather* per input pixel (each sums the windows that cover it), so there are no atomics
and the result is deterministic. The convolution itself is one ``tensordot`` (cuBLAS).

NOT YET RUN ON A GPU: written without a device (no CUDA machine was lent to the session
that wrote it), so :data:`xpnet.kernels.KERNEL_MODULES` loads this module only with
``XPNET_CUPY_KERNELS=1`` until the registry-driven test (``tests/test_kernels.py``) has
passed on a device. ``benchmarks/gpu_run.sh`` sets it.
"""

from __future__ import annotations

import cupy

from .._saved import Conv2dSaved, Pool2dSaved
from .._shapes import output_hw
from .._typing import IntPair
from ._registry import register

BACKEND = "cupy"

_GEOMETRY = "int32 h, int32 w, int32 out_h, int32 out_w, int32 kh, int32 kw, int32 sy, int32 sx, int32 ph, int32 pw"

_im2col = cupy.ElementwiseKernel(
    f"raw T img, {_GEOMETRY}",
    "T col",
    """
    int c0 = i / (kh * kw * out_h * out_w);
    int ky = i / (kw * out_h * out_w) % kh;
    int kx = i / (out_h * out_w) % kw;
    int out_y = i / out_w % out_h;
    int out_x = i % out_w;
    int in_y = ky + out_y * sy - ph;
    int in_x = kx + out_x * sx - pw;
    if (in_y >= 0 && in_y < h && in_x >= 0 && in_x < w) {
        col = img[in_x + w * (in_y + h * c0)];
    } else {
        col = 0;
    }
    """,
    "xpnet_im2col",
)


def _gather(add: str, assign: str) -> str:
    """CUDA code for one thread per padded input pixel (y, x): ``val`` sums ``add`` over
    every window (out_y, out_x) that covers the pixel, at offset (ky, kx) in it; windows
    from max(0, ceil((y - kh + 1) / sy)) to min(out_h, floor(y / sy) + 1), likewise in x.
    Each thread writes its own pixel (``assign``): no atomics, a deterministic sum."""
    return f"""
    int c0 = i / (h * w);
    int y = i / w % h + ph;
    int x = i % w + pw;
    int out_y_0 = max(0, (y - kh + sy) / sy);
    int out_y_1 = min(out_h, (y + sy) / sy);
    int out_x_0 = max(0, (x - kw + sx) / sx);
    int out_x_1 = min(out_w, (x + sx) / sx);
    T val = 0;
    for (int out_y = out_y_0; out_y < out_y_1; ++out_y) {{
        int ky = y - out_y * sy;
        for (int out_x = out_x_0; out_x < out_x_1; ++out_x) {{
            int kx = x - out_x * sx;
            {add}
        }}
    }}
    {assign} = val;
    """


_col2im = cupy.ElementwiseKernel(
    f"raw T col, {_GEOMETRY}",
    "T img",
    _gather(
        "val = val + col[out_x + out_w * (out_y + out_h * (kx + kw * (ky + kh * c0)))];", "img"
    ),
    "xpnet_col2im",
)

_max_pool_forward = cupy.ElementwiseKernel(
    f"raw T x, {_GEOMETRY}",
    "T out, int64 argmax",
    """
    int c0 = i / (out_h * out_w);
    int out_y = i / out_w % out_h;
    int out_x = i % out_w;
    int in_y_0 = max(0, out_y * sy - ph);
    int in_y_1 = min(h, out_y * sy + kh - ph);
    int in_x_0 = max(0, out_x * sx - pw);
    int in_x_1 = min(w, out_x * sx + kw - pw);
    T best = x[in_x_0 + w * (in_y_0 + h * c0)];
    int best_y = in_y_0;
    int best_x = in_x_0;
    for (int y = in_y_0; y < in_y_1; ++y) {
        for (int xx = in_x_0; xx < in_x_1; ++xx) {
            T v = x[xx + w * (y + h * c0)];
            // the first maximum, as the generic argmax; the first NaN wins, as NumPy's
            if (best < v || (v != v && best == best)) {
                best = v;
                best_y = y;
                best_x = xx;
            }
        }
    }
    out = best;
    argmax = (best_x + pw - out_x * sx) + kw * (best_y + ph - out_y * sy);
    """,
    "xpnet_max_pool_forward",
)

_max_pool_backward = cupy.ElementwiseKernel(
    f"raw T grad_out, raw int64 argmax, {_GEOMETRY}",
    "T grad_x",
    _gather(
        "int at = out_x + out_w * (out_y + out_h * c0);"
        " if (argmax[at] == kx + kw * ky) { val = val + grad_out[at]; }",
        "grad_x",
    ),
    "xpnet_max_pool_backward",
)

_relu_backward = cupy.ElementwiseKernel(
    "T grad_out, T out", "T grad_x", "grad_x = out <= 0 ? (T)0 : grad_out", "xpnet_relu_backward"
)

_sigmoid = cupy.ElementwiseKernel(
    "T x",
    "T out",
    "T e = exp(-fabs(x)); T positive = (T)1 / ((T)1 + e); out = x >= 0 ? positive : e * positive",
    "xpnet_sigmoid",
)


def _geometry(
    hw: tuple[int, int], out_hw: IntPair, kernel: IntPair, stride: IntPair, padding: IntPair
) -> tuple[int, ...]:
    return (*hw, *out_hw, *kernel, *stride, *padding)


@register(BACKEND, "conv2d_forward")
def conv2d_forward(
    x: cupy.ndarray,
    weight: cupy.ndarray,
    bias: cupy.ndarray | None = None,
    *,
    stride: IntPair,
    padding: IntPair,
) -> tuple[cupy.ndarray, Conv2dSaved]:
    """Columns (N, C, kH, kW, out_h, out_w) in one launch, then one tensordot."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    out_hw = output_hw((h, w), (kh, kw), stride, padding)
    cols = cupy.empty((n, c, kh, kw, *out_hw), dtype=x.dtype)
    _im2col(
        cupy.ascontiguousarray(x),
        *_geometry((h, w), out_hw, (kh, kw), stride, padding),
        cols,
    )
    out = cupy.tensordot(cols, weight, ((1, 2, 3), (1, 2, 3)))  # (N, out_h, out_w, C_out)
    if bias is not None:
        out += bias
    saved = Conv2dSaved(cols, weight, tuple(x.shape), stride, padding, bias is not None, BACKEND)
    return cupy.moveaxis(out, 3, 1), saved


@register(BACKEND, "conv2d_backward")
def conv2d_backward(
    grad_out: cupy.ndarray, saved: Conv2dSaved, *, input_grad: bool = True
) -> tuple[cupy.ndarray | None, cupy.ndarray, cupy.ndarray | None]:
    """Weight gradient by one tensordot; the input gradient by one more and a gathering
    col2im launch."""
    n, c, h, w = saved.x_shape
    _, _, kh, kw = saved.weight.shape
    out_hw = tuple(grad_out.shape[-2:])
    grad_weight = cupy.tensordot(grad_out, saved.cols, ((0, 2, 3), (0, 4, 5)))
    grad_bias = grad_out.sum(axis=(0, 2, 3)) if saved.has_bias else None
    if not input_grad:
        return None, grad_weight, grad_bias
    grad_cols = cupy.tensordot(saved.weight, grad_out, (0, 1))  # (C, kH, kW, N, oh, ow)
    grad_cols = cupy.ascontiguousarray(cupy.moveaxis(grad_cols, 3, 0))
    grad_x = cupy.empty((n, c, h, w), dtype=grad_out.dtype)
    _col2im(grad_cols, *_geometry((h, w), out_hw, (kh, kw), saved.stride, saved.padding), grad_x)
    return grad_x, grad_weight, grad_bias


@register(BACKEND, "max_pool2d_forward")
def max_pool2d_forward(
    x: cupy.ndarray, kernel: IntPair, *, stride: IntPair, padding: IntPair
) -> tuple[cupy.ndarray, Pool2dSaved]:
    """Each output's maximum and its window offset (the first maximum) in one launch."""
    n, c, h, w = x.shape
    out_hw = output_hw((h, w), kernel, stride, padding)
    out = cupy.empty((n, c, *out_hw), dtype=x.dtype)
    argmax = cupy.empty((n, c, *out_hw), dtype=cupy.int64)
    geometry = _geometry((h, w), out_hw, kernel, stride, padding)
    _max_pool_forward(cupy.ascontiguousarray(x), *geometry, out, argmax)
    return out, Pool2dSaved(argmax, tuple(x.shape), kernel, stride, padding, BACKEND)


@register(BACKEND, "max_pool2d_backward")
def max_pool2d_backward(grad_out: cupy.ndarray, saved: Pool2dSaved) -> cupy.ndarray:
    """Each input pixel gathers the gradients of the windows whose argmax it is."""
    n, c, h, w = saved.x_shape
    out_hw = tuple(grad_out.shape[-2:])
    grad_x = cupy.empty((n, c, h, w), dtype=grad_out.dtype)
    geometry = _geometry((h, w), out_hw, saved.kernel, saved.stride, saved.padding)
    _max_pool_backward(cupy.ascontiguousarray(grad_out), saved.argmax, *geometry, grad_x)
    return grad_x


@register(BACKEND, "relu_backward")
def relu_backward(grad_out: cupy.ndarray, out: cupy.ndarray) -> cupy.ndarray:
    """The gradient where the output is positive (or NaN), else 0: one launch."""
    return _relu_backward(grad_out, out)


@register(BACKEND, "sigmoid_forward")
def sigmoid_forward(x: cupy.ndarray) -> tuple[cupy.ndarray, cupy.ndarray]:
    """The generic stable formula in one launch; saved: the output."""
    out = _sigmoid(x)
    return out, out
