"""The Winograd layers' small matrix products as a compiled register-blocked loop (Numba).

F(2x2, 3x3) turns a 3x3 convolution into 16 products per block of images, one per tile
point, whose inner size is a channel count: ``(tiles, 16) @ (16, 16)`` on the residual
net's first block. OpenBLAS runs such thin products at 25-50 GFLOP/s on this project's
two cores (packing and thread hand-offs cost as much as the arithmetic at K = 16), and
LLVM's auto-vectoriser leaves a plain Numba loop for them scalar (about 3 GFLOP/s: it
cannot prove the output row and the weight row apart).

So the one loop that matters is written out as vector instructions: :func:`_block_4x16`
keeps a 4 x 16 block of the result in eight 8-float registers and adds one rank-one
update per step of the inner dimension (two vector loads of a ``B`` row, four broadcasts
of ``A`` values, eight fused multiply-adds). That is the micro-kernel every BLAS is built
around (Goto and van de Geijn, 2008), here without the packing, which thin products do
not repay. It ran at 45-78 GFLOP/s on one core of this project's CPU for 16 and 32
channels (OpenBLAS: about 33 on one core, 25-80 on two; benchmarks/README.md, sixth
pass). LLVM lowers the 8-float vectors to whatever the CPU has (two 4-float halves
without AVX).

A layer's three products, each over the 16 tile points (``p``), take two functions:

- :func:`products` ``out[p] = a[p] @ b[p]`` (the forward, and the input gradient's
  ``dV = dM @ U^T`` with ``U^T`` made contiguous);
- :func:`products_at` ``out[p] = a[p]^T @ b[p]`` (the weight gradient, ``V^T @ dM``).

They need the result's columns in whole blocks of 16 (and, for :func:`products_at`, its
rows in blocks of 4): :func:`fits` says so, and the callers use ``np.matmul`` otherwise.
Sums run in float32 in the order of the inner dimension, as a BLAS kernel does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

ROWS, COLUMNS, LANES = 4, 16, 8
"""The micro-kernel's block of the result (4 x 16) and its vectors' width (8 floats)."""

SPAN = 128
"""Rows of ``a`` and ``b`` that :func:`products_at` takes through all its blocks at a time."""

_F32 = ir.FloatType()
_VECTOR = ir.VectorType(_F32, LANES)
_INDEX = ir.IntType(64)


def fits(rows: int, columns: int, *, transposed: bool) -> bool:
    """Whether :func:`products` (or, ``transposed``, :func:`products_at`) takes a result of
    ``rows`` x ``columns``: columns in whole blocks of 16 (and rows of 4 when transposed)."""
    return columns % COLUMNS == 0 and (not transposed or rows % ROWS == 0)


def _micro_kernel(accumulate: bool) -> Any:
    """The micro-kernel as a Numba intrinsic (:func:`_block_4x16`; with ``accumulate``,
    :func:`_add_block_4x16`): Numba types its 11 arguments, then :func:`_emit_block`
    writes its instructions into the calling loop's code."""

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
    ) -> Any:
        if not all(isinstance(x, types.Array) and x.dtype == types.float32 for x in (a, b, c)):
            return None  # Numba then reports no matching signature
        arguments = (a, a_start, a_row, a_step, b, b_start, b_step, c, c_start, c_row, depth)

        def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
            data = [
                context.make_array(signature.args[i])(context, builder, args[i]).data
                for i in (0, 4, 7)
            ]
            index = [
                context.cast(builder, args[i], signature.args[i], types.intp)
                for i in (1, 2, 3, 5, 6, 8, 9, 10)
            ]
            _emit_block(builder, data, index, accumulate)
            return context.get_dummy_value()

        return types.void(*arguments), codegen

    return intrinsic(typer)


def _emit_block(builder: ir.IRBuilder, data: list[Any], index: list[Any], accumulate: bool) -> None:
    """The micro-kernel's LLVM IR: a loop over the inner dimension ``k`` that keeps the
    4 x 16 block of sums in 8 vectors (``acc[r][half]``)."""
    a_start, a_row, a_step, b_start, b_step, c_start, c_row, depth = index
    a_ptr, b_ptr, c_ptr = (
        builder.gep(pointer, [start])
        for pointer, start in zip(data, (a_start, b_start, c_start), strict=True)
    )
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), "llvm.fma.v8f32"
    )

    def constant(i: int) -> ir.Constant:
        return ir.Constant(_INDEX, i)

    def vector_at(pointer: Any, offset: int) -> Any:  # 8 floats from pointer + offset
        return builder.bitcast(builder.gep(pointer, [constant(offset)]), _VECTOR.as_pointer())

    def c_vector(r: int, half: int) -> Any:
        return vector_at(builder.gep(c_ptr, [builder.mul(constant(r), c_row)]), LANES * half)

    zero = ir.Constant(_VECTOR, [0.0] * LANES)
    # stack slots, which LLVM promotes to registers (mem2reg): the loop's running sums
    acc = [
        [
            cgutils.alloca_once_value(
                builder, builder.load(c_vector(r, half), align=4) if accumulate else zero
            )
            for half in range(2)
        ]
        for r in range(ROWS)
    ]
    undefined = ir.Constant(_VECTOR, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    with cgutils.for_range(builder, depth) as loop:
        k = loop.index
        b_row = builder.gep(b_ptr, [builder.mul(k, b_step)])
        b_halves = [builder.load(vector_at(b_row, LANES * half), align=4) for half in range(2)]
        a_k = builder.gep(a_ptr, [builder.mul(k, a_step)])
        for r in range(ROWS):
            value = builder.load(builder.gep(a_k, [builder.mul(constant(r), a_row)]))
            lane0 = builder.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
            broadcast = builder.shuffle_vector(lane0, undefined, splat)  # value in all 8 lanes
            for half in range(2):
                total = builder.call(fma, [broadcast, b_halves[half], builder.load(acc[r][half])])
                builder.store(total, acc[r][half])
    for r in range(ROWS):
        for half in range(2):
            builder.store(builder.load(acc[r][half]), c_vector(r, half), align=4)


_block_4x16 = _micro_kernel(accumulate=False)
"""``c[c_start + r*c_row + j] = sum over k < depth of a[a_start + r*a_row + k*a_step]
* b[b_start + k*b_step + j]`` for r < 4, j < 16: flat float32 element offsets into the
arrays' memory (C-contiguous from their first element on)."""

_add_block_4x16 = _micro_kernel(accumulate=True)
""":func:`_block_4x16` added to what ``c`` holds there."""


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
                _block_4x16(
                    a_p, t * depth, depth, 1, b_p, j, columns, c_p, t * columns + j, columns, depth
                )
        for t in range(whole, rows):  # the last rows, fewer than 4: plain sums
            for j in range(columns):
                total = np.float32(0)
                for k in range(depth):
                    total += a_p[t, k] * b_p[k, j]
                c_p[t, j] = total


@njit(parallel=True, cache=True)
def products_at(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[p] = a[p]^T @ b[p]`` for float32 ``a`` (P, T, K), ``b`` (P, T, N), ``out``
    (P, K, N), each ``[p]`` a C-contiguous matrix, K a multiple of 4 and N of 16
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
                    _add_block_4x16(
                        a_p,
                        first * rows + i,
                        1,
                        rows,
                        b_p,
                        first * columns + j,
                        columns,
                        c_p,
                        i * columns + j,
                        columns,
                        span,
                    )


__all__ = ["fits", "products", "products_at"]
