"""
Naive loops against im2col
==========================

A convolution is a sum over every output position, every filter and every weight of its
window. Written as loops it reads exactly like that definition, and runs at Python's pace.
*im2col* copies each window into a row of a matrix (one strided slice per kernel offset,
as Chainer does), so the whole layer becomes one matrix product that BLAS runs at the
machine's speed. This example checks that the two agree and times them on growing
batches.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

from xpnet import functional as F
from xpnet import use_fast_paths


def conv2d_loops(x, w):
    """The definition: out[n, o, i, j] = sum over c, u, v of x[n, c, i+u, j+v] * w[o, c, u, v]."""
    n, _, h, wd = x.shape
    o, _, k, _ = w.shape
    out = np.zeros((n, o, h - k + 1, wd - k + 1), dtype=x.dtype)
    for b in range(n):
        for f in range(o):
            for i in range(h - k + 1):
                for j in range(wd - k + 1):
                    out[b, f, i, j] = np.sum(x[b, :, i : i + k, j : j + k] * w[f])
    return out


def conv2d_im2col(x, w):
    """One strided slice per kernel offset (u, v) fills the column matrix; then one product."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    oh, ow = h - k + 1, wd - k + 1
    cols = np.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            cols[:, :, u, v] = x[:, :, u : u + oh, v : v + ow]
    cols = cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * k * k)
    out = cols @ w.reshape(o, -1).T
    return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


rng = np.random.default_rng(0)
w = rng.standard_normal((8, 1, 5, 5)).astype(np.float32)
x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
print(
    "loops vs im2col, largest difference:", np.abs(conv2d_loops(x, w) - conv2d_im2col(x, w)).max()
)
with use_fast_paths(False):  # xpnet's generic array-API path
    print("loops vs xpnet, largest difference:", np.abs(conv2d_loops(x, w) - F.conv2d(x, w)).max())

# %%
# Timing
# ------
# The loops' time grows with the batch at about a millisecond an image even for this
# small layer; im2col's stays close to the cost of copying the windows once.
batches = [1, 2, 4, 8, 16]
times = {"naive loops": [], "im2col + one product": [], "xpnet (kernels on)": []}
for n in batches:
    x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
    for name, fn in [
        ("naive loops", conv2d_loops),
        ("im2col + one product", conv2d_im2col),
        ("xpnet (kernels on)", lambda a, b: F.conv2d(a, b)),
    ]:
        fn(x, w)
        start = time.perf_counter()
        fn(x, w)
        times[name].append(time.perf_counter() - start)
for name, t in times.items():
    print(f"{name:>22}: batch 16 in {t[-1] * 1e3:8.2f} ms")

fig, ax = plt.subplots(figsize=(6, 4))
for name, t in times.items():
    ax.plot(batches, np.array(t) * 1e3, "o-", label=name)
ax.set(
    xscale="log",
    yscale="log",
    xlabel="batch",
    ylabel="ms per forward",
    title="conv 1→8, 5x5, 28x28 images",
)
ax.legend()
plt.show()
