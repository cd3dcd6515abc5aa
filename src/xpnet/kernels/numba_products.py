"""The Winograd layers' small matrix products as a compiled register-blocked loop (Numba).

F(2x2, 3x3) turns a 3x3 convolution into 16 products per block of images, one per tile
point, whose inner size is a channel count: ``(tiles, 16) @ (16, 16)`` on the residual
net's first block. OpenBLAS runs such thin products at 25-50 GFLOP/s on this project's
two cores (packing and thread hand-offs cost as much as the arithmetic at K = 16), and
LLVM's auto-vectoriser leaves a plain Numba loop for them scalar (about 3 GFLOP/s: it
cannot prove the output row and the weight row apart).

So the one loop that matters is written out as vector instructions: :func:`_block` keeps
a :data:`ROWS` x 16 block of the result in vector registers and adds one rank-one update
per step of the inner dimension (a 16-float ``B`` row as one or two vector loads, one
broadcast ``A`` value a row, a fused multiply-add a register). That is the micro-kernel
every BLAS is built around (Goto and van de Geijn, 2008), here without the packing, which
thin products do not repay. The block's shape follows the vector registers Numba compiles
for (:data:`WIDE_VECTORS`): with AVX-512, 8 rows of one 16-float vector each (8
independent sums keep both FMA units of a Zen 5 core busy: 230-320 GFLOP/s on two cores
as a direct convolution, against 150-180 for 4 x 16); otherwise 4 rows of two 8-float
vectors, which fit AVX2's 16 registers (45-78 GFLOP/s on one core for 16 and 32
channels; OpenBLAS about 33 on one core, 25-80 on two; docs/history.md, sixth pass).
LLVM lowers the vectors to whatever the CPU has. Its inner dimension may come in
``segments`` (the rows of a convolution window, :mod:`xpnet.kernels.numba_direct`), the
sums kept in registers across them.

A layer's three products, each over the 16 tile points (``p``), take two functions:

- :func:`products` ``out[p] = a[p] @ b[p]`` (the forward, and the input gradient's
  ``dV = dM @ U^T`` with ``U^T`` made contiguous);
- :func:`products_at` ``out[p] = a[p]^T @ b[p]`` (the weight gradient, ``V^T @ dM``).

They need the result's columns in whole blocks of 16 (and, for :func:`products_at`, its
rows in blocks of :data:`ROWS`): :func:`fits` says so, and the callers use ``np.matmul`` otherwise.
Sums run in float32 in the order of the inner dimension, as a BLAS kernel does.
"""

from __future__ import annotations

from typing import Any

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


def _wide_vectors() -> bool:
    """Whether the CPU Numba compiles for has AVX-512 (``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES`` when set, else this machine)."""
    name, features = getattr(config, "CPU_NAME", None), getattr(config, "CPU_FEATURES", None)
    if name and name != "host":
        return "+avx512f" in (features or "")
    return bool(llvmlite.binding.get_host_cpu_features().get("avx512f", False))


WIDE_VECTORS = _wide_vectors()
"""Whether the micro-kernel's vectors are 16 floats (AVX-512) or 8."""
COLUMNS = 16
"""The micro-kernel's block of the result is :data:`ROWS` x 16."""
LANES = 16 if WIDE_VECTORS else 8
"""Floats in one of its vectors; a row of the block is ``COLUMNS // LANES`` of them."""
ROWS = 8 if WIDE_VECTORS else 4
"""Rows of its block: as many as the vector registers hold (with two FMA units of four
cycles' latency, 8 independent sums keep both busy)."""

SPAN = 128
"""Rows of ``a`` and ``b`` that :func:`products_at` takes through all its blocks at a time."""

_F32 = ir.FloatType()
_VECTOR = ir.VectorType(_F32, LANES)
_INDEX = ir.IntType(64)


def fits(rows: int, columns: int, *, transposed: bool) -> bool:
    """Whether :func:`products` (or, ``transposed``, :func:`products_at`) takes a result of
    ``rows`` x ``columns``: columns in whole blocks of 16 (and rows of :data:`ROWS` when
    transposed)."""
    return columns % COLUMNS == 0 and (not transposed or rows % ROWS == 0)


def _micro_kernel(accumulate: bool, rows: int = 0, columns: int = COLUMNS) -> Any:
    """The micro-kernel as a Numba intrinsic (:func:`_block`; with ``accumulate``,
    :func:`_add_block`): Numba types its 14 arguments, then :func:`_emit_block` writes its
    instructions into the calling loop's code."""

    def typer(  # Numba passes the typing context, then each argument's type
        typing_context: Any,
        a: Any,
        a_start: Any,
        a_row: Any,
        a_step: Any,
        b: Any,
        b_start: Any,
        b_step: Any,
        c: Any,
        c_start: Any,
        c_row: Any,
        depth: Any,
        segments: Any,
        a_segment: Any,
        b_segment: Any,
    ) -> Any:
        if not all(isinstance(x, types.Array) and x.dtype == types.float32 for x in (a, b, c)):
            return None  # Numba then reports no matching signature
        if any(
            isinstance(x, types.Array) and x.dtype != types.intp for x in (a_row, a_step, c_row)
        ):
            return None
        arguments = (a, a_start, a_row, a_step, b, b_start, b_step, c, c_start, c_row, depth,
                     segments, a_segment, b_segment)  # fmt: skip

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            data = [
                context.make_array(signature.args[i])(context, builder, args[i]).data
                for i in (0, 4, 7)
            ]
            index = [
                _step_offsets(context, builder, signature.args[i], args[i])
                if i == 3
                else context.cast(builder, args[i], signature.args[i], types.intp)
                for i in (1, 3, 5, 6, 8, 10, 11, 12, 13)
            ]
            offsets = [
                _row_offsets(context, builder, signature.args[i], args[i], rows or ROWS)
                for i in (2, 9)
            ]
            _emit_block(builder, data, index, offsets, accumulate, columns)
            return context.get_dummy_value()

        return types.void(*arguments), codegen

    return intrinsic(typer)


def _step_offsets(context: Any, builder: ir.IRBuilder, kind: Any, value: Any) -> Any:
    """``a_step``: an integer, or (an integer array of each step's own offset) its data
    pointer, marked by a tuple."""
    if isinstance(kind, types.Array):
        return (context.make_array(kind)(context, builder, value).data,)
    return context.cast(builder, value, kind, types.intp)


def _row_offsets(
    context: Any, builder: ir.IRBuilder, kind: Any, value: Any, rows: int
) -> list[Any]:
    """The :data:`ROWS` rows' element offsets: ``r * value`` for an integer ``value``, the
    first ROWS entries of an integer array ``value`` otherwise."""
    if isinstance(kind, types.Array):
        offsets = context.make_array(kind)(context, builder, value).data
        return [builder.load(builder.gep(offsets, [ir.Constant(_INDEX, r)])) for r in range(rows)]
    step = context.cast(builder, value, kind, types.intp)
    return [builder.mul(ir.Constant(_INDEX, r), step) for r in range(rows)]


def _emit_block(
    builder: ir.IRBuilder,
    data: list[Any],
    index: list[Any],
    rows: list[Any],
    accumulate: bool,
    columns: int,
) -> None:
    """The micro-kernel's LLVM IR: loops over the segments and the inner dimension ``k``
    that keep the block of sums in vectors (``acc[r][v]``: row ``r``, vector ``v``)."""
    a_start, a_step, b_start, b_step, c_start, depth = index[:6]
    segments, a_segment, b_segment = index[6:]
    a_rows, c_rows = rows
    a_ptr, b_ptr, c_ptr = (
        builder.gep(pointer, [start])
        for pointer, start in zip(data, (a_start, b_start, c_start), strict=True)
    )
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), f"llvm.fma.v{LANES}f32"
    )
    per_row = columns // LANES

    def constant(i: int) -> ir.Constant:
        return ir.Constant(_INDEX, i)

    def vector_at(pointer: Any, offset: int) -> Any:  # LANES floats from pointer + offset
        return builder.bitcast(builder.gep(pointer, [constant(offset)]), _VECTOR.as_pointer())

    def c_vector(r: int, v: int) -> Any:
        return vector_at(builder.gep(c_ptr, [c_rows[r]]), LANES * v)

    zero = ir.Constant(_VECTOR, [0.0] * LANES)
    # stack slots, which LLVM promotes to registers (mem2reg): the loops' running sums
    acc = [
        [
            cgutils.alloca_once_value(
                builder, builder.load(c_vector(r, v), align=4) if accumulate else zero
            )
            for v in range(per_row)
        ]
        for r in range(len(a_rows))
    ]
    undefined = ir.Constant(_VECTOR, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    with cgutils.for_range(builder, segments) as segment:
        a_seg = builder.gep(a_ptr, [builder.mul(segment.index, a_segment)])
        b_seg = builder.gep(b_ptr, [builder.mul(segment.index, b_segment)])
        with cgutils.for_range(builder, depth) as loop:
            k = loop.index
            b_row = builder.gep(b_seg, [builder.mul(k, b_step)])
            b_vectors = [builder.load(vector_at(b_row, LANES * v), align=4) for v in range(per_row)]
            if isinstance(a_step, tuple):  # each step's own offset
                a_k = builder.gep(a_seg, [builder.load(builder.gep(a_step[0], [k]))])
            else:
                a_k = builder.gep(a_seg, [builder.mul(k, a_step)])
            for r in range(len(a_rows)):
                value = builder.load(builder.gep(a_k, [a_rows[r]]))
                lane0 = builder.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
                broadcast = builder.shuffle_vector(lane0, undefined, splat)  # value in every lane
                for v in range(per_row):
                    total = builder.call(fma, [broadcast, b_vectors[v], builder.load(acc[r][v])])
                    builder.store(total, acc[r][v])
    for r in range(len(a_rows)):
        for v in range(per_row):
            builder.store(builder.load(acc[r][v]), c_vector(r, v), align=4)


_block = _micro_kernel(accumulate=False)
"""``c[c_start + r*c_row + j] = sum over s < segments, k < depth of
a[a_start + s*a_segment + r*a_row + k*a_step] * b[b_start + s*b_segment + k*b_step + j]``
for r < :data:`ROWS`, j < 16, in that order (s, then k); arguments ``(a, a_start, a_row,
a_step, b, b_start, b_step, c, c_start, c_row, depth, segments, a_segment, b_segment)``:
flat float32 element offsets into the arrays' memory (C-contiguous from their first
element on). ``a_row`` or ``c_row`` may also be an array of each row's own offset (intp,
ROWS entries), which then replaces ``r * a_row`` (``r * c_row``): rows anywhere; and
``a_step`` an array of each step's (``depth`` entries), which replaces ``k * a_step``."""

_add_block = _micro_kernel(accumulate=True)
""":func:`_block` added to what ``c`` holds there."""

WIDE_ROWS, WIDE_COLUMNS = (6, 32) if WIDE_VECTORS else (ROWS, COLUMNS)
"""The wide block: with AVX-512, 6 rows of two 16-float vectors (12 independent sums, and
a third fewer loads a multiply-add than 8 x 16) for results whose columns come in blocks
of 32; otherwise the block itself."""

_add_block_wide = _micro_kernel(accumulate=True, rows=WIDE_ROWS, columns=WIDE_COLUMNS)
""":func:`_add_block` on a :data:`WIDE_ROWS` x :data:`WIDE_COLUMNS` block."""

_add_block_long = _micro_kernel(accumulate=True, columns=WIDE_COLUMNS)
""":func:`_add_block` on a :data:`ROWS` x :data:`WIDE_COLUMNS` block (16 sums with
AVX-512): for a result whose rows must come in blocks of :data:`ROWS`."""


@njit(parallel=True, cache=True)
def products(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[p] = a[p] @ b[p]`` for float32 ``a`` (P, T, K), ``b`` (P, K, N), ``out``
    (P, T, N), each ``[p]`` a C-contiguous matrix, N a multiple of 16 (:func:`fits`)."""
    points, rows, depth = a.shape
    columns = b.shape[2]
    whole = rows - rows % ROWS
    for p in prange(points):
        a_p, b_p, c_p = a[p], b[p], out[p]
        for t in range(0, whole, ROWS):
            for j in range(0, columns, COLUMNS):
                _block(
                    a_p, t * depth, depth, 1, b_p, j, columns, c_p, t * columns + j, columns,
                    depth, 1, 0, 0,
                )  # fmt: skip
        for t in range(whole, rows):  # the last rows, fewer than ROWS: plain sums
            for j in range(columns):
                total = np.float32(0)
                for k in range(depth):
                    total += a_p[t, k] * b_p[k, j]
                c_p[t, j] = total


@njit(parallel=True, cache=True)
def products_at(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[p] = a[p]^T @ b[p]`` for float32 ``a`` (P, T, K), ``b`` (P, T, N), ``out``
    (P, K, N), each ``[p]`` a C-contiguous matrix, K a multiple of :data:`ROWS` and N of 16
    (:func:`fits`)."""
    points, depth, rows = a.shape
    columns = b.shape[2]
    for p in prange(points):
        a_p, b_p, c_p = a[p], b[p], out[p]
        c_p[:] = 0
        for first in range(0, depth, SPAN):  # spans of T whose rows stay in L1 across the blocks
            span = min(SPAN, depth - first)
            for i in range(0, rows, ROWS):
                for j in range(0, columns, COLUMNS):
                    _add_block(
                        a_p, first * rows + i, 1, rows, b_p, first * columns + j, columns,
                        c_p, i * columns + j, columns, span, 1, 0, 0,
                    )  # fmt: skip


__all__ = ["fits", "products", "products_at"]
