"""Hypothesis strategies for the shape space: random shapes, strides (1-3), paddings (0-2),
kernel sizes (1-5), non-square inputs, batch 1 and channels 1 included."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st


class WindowCase(NamedTuple):
    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    seed: int


@st.composite
def window_cases(draw, *, pool: bool = False, max_side: int = 5) -> WindowCase:
    kernel = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if pool:  # PyTorch's rule: padding at most half the kernel
        padding = tuple(draw(st.integers(0, min(2, k // 2))) for k in kernel)
    else:
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # The padded input must hold at least one window.
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), kernel[0] + 6))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), kernel[1] + 6))
    return WindowCase(
        n=draw(st.integers(1, 3)),
        c_in=draw(st.integers(1, 3)),
        c_out=draw(st.integers(1, 4)),
        h=h,
        w=w,
        kernel=kernel,
        stride=stride,
        padding=padding,
        seed=draw(st.integers(0, 2**31 - 1)),
    )
