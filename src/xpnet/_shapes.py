"""Window geometry shared by the generic ops and the kernels (no array code here)."""

from __future__ import annotations

from ._typing import IntPair


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Number of window positions along one axis (floor mode, like PyTorch).

    Examples
    --------
    >>> from xpnet._shapes import output_size
    >>> output_size(28, 5, 1, 0), output_size(28, 3, 2, 1)
    (24, 14)
    """
    return (size + 2 * padding - kernel) // stride + 1


def output_hw(hw: tuple[int, ...], kernel: IntPair, stride: IntPair, padding: IntPair) -> IntPair:
    """(out_h, out_w) of windows of ``kernel`` slid over an (h, w) image."""
    return (
        output_size(hw[0], kernel[0], stride[0], padding[0]),
        output_size(hw[1], kernel[1], stride[1], padding[1]),
    )
