"""Run ``xpnet/kernels/cupy.py`` on the CPU, with no GPU: every ``ElementwiseKernel`` body is
compiled by g++ as C++ (one loop over ``i`` where CUDA has one thread per ``i``), CuPy's
array functions are NumPy's, and each kernel is compared with the generic code on random
shapes, strides, paddings, ties and NaN. This checks the kernels' index arithmetic and the
Python around them; only a GPU run checks the CUDA compilation and launch itself.

    python tests/cupy_emulation.py [TRIALS] [WORKDIR]

Run as a separate process by ``tests/test_cupy_kernels_on_cpu.py``: it registers the kernels
under a fake ``cupy`` module, which must not leak into the test session.
"""

import ctypes
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WORKDIR = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")

kernels = {}
CT = {"T": "T", "int32": "int", "int64": "long long"}


def build(ins, outs, body, name):
    ins = [p.split() for p in ins.split(",")]
    outs = [p.split() for p in outs.split(",")]
    params, pre = [], []
    for p in ins:
        raw = p[0] == "raw"
        t, n = (p[1], p[2]) if raw else (p[0], p[1])
        if raw:
            params.append(f"const {CT[t]}* {n}")
        elif t == "T":
            params.append(f"const T* {n}_in")
            pre.append(f"const T {n} = {n}_in[i];")
        else:
            params.append(f"const {CT[t]} {n}")
    for t, n in outs:
        params.append(f"{CT[t]}* {n}_out")
        pre.append(f"{CT[t]}& {n} = {n}_out[i];")
    code = []
    for T, suffix in (("float", "f32"), ("double", "f64")):
        decl = (
            ", ".join(params)
            .replace("const T*", f"const {T}*")
            .replace("const T ", f"const {T} ")
            .replace("T* ", f"{T}* ")
        )
        code.append(
            f'extern "C" void {name}_{suffix}({decl}, long long n) {{ typedef {T} T; using std::max; using std::min;\n'
            f"  for (long long i = 0; i < n; ++i) {{ {' '.join(pre)}\n{body};\n }} }}"
        )
    kernels[name] = (ins, outs)
    return "\n".join(code)


sources = ["#include <cmath>", "#include <algorithm>", "using std::exp; using std::fabs;"]


class Kernel:
    def __init__(self, ins, outs, body, name):
        sources.append(build(ins, outs, body, name))
        self.name = name

    def __call__(self, *args):
        ins, outs = kernels[self.name]
        dtype = next(a.dtype for a, p in zip(args, ins) if isinstance(a, np.ndarray) and "T" in p)
        given = list(args[len(ins) :])
        if not given:  # elementwise: allocate outputs like the inputs
            shape = np.broadcast_shapes(*(a.shape for a in args if isinstance(a, np.ndarray)))
            given = [np.empty(shape, dtype=dtype if t == "T" else np.int64) for t, _ in outs]
            inputs = [
                np.ascontiguousarray(np.broadcast_to(a, shape)) if isinstance(a, np.ndarray) else a
                for a in args
            ]
        else:
            inputs = list(args[: len(ins)])
        fn = getattr(LIB, f"{self.name}_{'f32' if dtype == np.float32 else 'f64'}")
        cargs = []
        for a in inputs + given:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, self.name
                cargs.append(a.ctypes.data_as(ctypes.c_void_p))
            else:
                cargs.append(ctypes.c_int(int(a)))
        fn(*cargs, ctypes.c_longlong(given[0].size))
        return given[0] if len(given) == 1 else tuple(given)


fake = types.ModuleType("cupy")
fake.ElementwiseKernel = Kernel
for name in ("empty", "tensordot", "moveaxis", "ascontiguousarray", "ndarray", "int64"):
    setattr(fake, name, getattr(np, name))
sys.modules["cupy"] = fake
import xpnet.kernels.cupy as ck  # noqa: E402

(WORKDIR / "emu.cpp").write_text("\n".join(sources))
subprocess.run(
    ["g++", "-O1", "-shared", "-fPIC", str(WORKDIR / "emu.cpp"), "-o", str(WORKDIR / "emu.so")],
    check=True,
)
LIB = ctypes.CDLL(str(WORKDIR / "emu.so"))

from xpnet import functional as F  # noqa: E402
from xpnet.kernels import use_fast_paths  # noqa: E402

rng = np.random.default_rng(0)
worst = 0.0
for trial in range(TRIALS):
    dtype = rng.choice([np.float32, np.float64])
    n, c, co = rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 5)
    kh, kw = rng.integers(1, 6, size=2)
    sh, sw = rng.integers(1, 4, size=2)
    ph, pw = rng.integers(0, 3, size=2)
    h = rng.integers(max(1, kh - 2 * ph), kh + 7)
    w = rng.integers(max(1, kw - 2 * pw), kw + 7)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if rng.random() < 0.3:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wt = rng.standard_normal((co, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype) if rng.random() < 0.5 else None
    stride, padding = (int(sh), int(sw)), (int(ph), int(pw))
    out, saved = ck.conv2d_forward(x, wt, b, stride=stride, padding=padding)
    g = rng.standard_normal(out.shape).astype(dtype)
    got = ck.conv2d_backward(g, saved)
    with use_fast_paths(False):
        ref_out, ref_saved = F.conv2d_forward(x, wt, b, stride=stride, padding=padding)
        ref = F.conv2d_backward(g, ref_saved)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for a, r in zip((out, *got), (ref_out, *ref)):
        if r is None:
            assert a is None
            continue
        err = np.max(np.abs(a - r)) / max(np.max(np.abs(r)), 1)
        worst = max(worst, err) if dtype == np.float64 else worst
        assert err < tol, ("conv", trial, err)
    # max pool (padding at most half the kernel)
    pk = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    pp = (int(rng.integers(0, pk[0] // 2 + 1)), int(rng.integers(0, pk[1] // 2 + 1)))
    ps = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    xp_ = rng.standard_normal(
        (n, c, pk[0] + rng.integers(0, 6), pk[1] + rng.integers(0, 6))
    ).astype(dtype)
    if rng.random() < 0.3:
        xp_ = np.maximum(np.round(xp_), 0).astype(dtype)  # ties
    if rng.random() < 0.2:
        xp_.flat[rng.integers(xp_.size)] = np.nan
    o, s = ck.max_pool2d_forward(xp_, pk, stride=ps, padding=pp)
    gg = rng.standard_normal(o.shape).astype(dtype)
    gx = ck.max_pool2d_backward(gg, s)
    with use_fast_paths(False), np.errstate(invalid="ignore"):
        ro, rs = F.max_pool2d_forward(xp_, pk, stride=ps, padding=pp)
        rg = F.max_pool2d_backward(gg, rs)
    np.testing.assert_array_equal(o, ro)
    np.testing.assert_array_equal(s.argmax, rs.argmax)
    np.testing.assert_allclose(gx, rg, rtol=1e-6, atol=1e-6)
    # elementwise
    e = (rng.standard_normal((3, 4)) * 20).astype(dtype)
    e.flat[:5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    with use_fast_paths(False), np.errstate(all="ignore"):
        np.testing.assert_allclose(
            ck.sigmoid_forward(e)[0], F.sigmoid(e), rtol=2e-7
        )  # exp: C++ vs NumPy
        np.testing.assert_array_equal(ck.relu_backward(gg, o), F.relu_backward(gg, o))
print(
    f"{TRIALS} random cases: conv forward/backward, max pool forward/backward (ties, NaN), sigmoid, relu backward agree; worst float64 conv error {worst:.1e}"
)
