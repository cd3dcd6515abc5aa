"""Where a conv layer's time goes on NumPy: im2col copies vs the matmuls vs col2im.

    python benchmarks/profile_conv.py

Times each phase of xpnet's conv2d forward and backward separately (median of 20) for the
default model's second conv layer at batch 128 (16->32 channels, 5x5, 12x12 input).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from xpnet import functional as F
from xpnet.functional._windows import col2im, im2col, pad2d


def median_ms(fn, repeats: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    n, c_in, c_out, k, hw = 128, 16, 32, 5, 12
    x = rng.standard_normal((n, c_in, hw, hw)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in, k, k)).astype(np.float32)
    out_hw = (hw - k + 1, hw - k + 1)
    x_cn = pad2d(np.permute_dims(x, (1, 0, 2, 3)), (0, 0))
    cols = im2col(x_cn, (k, k), (1, 1), out_hw, axis=1).reshape(c_in * k * k, -1)
    w2 = w.reshape(c_out, -1)
    out, saved = F.conv2d_forward(x, w)
    grad = np.ascontiguousarray(rng.standard_normal(out.shape).astype(np.float32))
    g2 = np.permute_dims(grad, (1, 0, 2, 3)).reshape(c_out, -1)
    dcols = (w2.T @ g2).reshape(c_in, k * k, n, *out_hw)
    phases = {
        "forward total": lambda: F.conv2d_forward(x, w),
        "  im2col (stack of 25 strided slices)": lambda: im2col(
            x_cn, (k, k), (1, 1), out_hw, axis=1
        ).reshape(c_in * k * k, -1),
        "  forward matmul": lambda: w2 @ cols,
        "backward total": lambda: F.conv2d_backward(grad, saved),
        "  grad_out transpose to (C_out, N*L)": lambda: np.permute_dims(grad, (1, 0, 2, 3)).reshape(
            c_out, -1
        ),
        "  weight-gradient matmul": lambda: g2 @ cols.T,
        "  column-gradient matmul": lambda: w2.T @ g2,
        "  col2im (25 strided adds)": lambda: col2im(
            lambda i: dcols[:, i, ...], grad, (c_in, n, hw, hw), (k, k), (1, 1), out_hw
        ),
    }
    for name, fn in phases.items():
        print(f"{name:<40} {median_ms(fn):8.3f} ms")


if __name__ == "__main__":
    main()
