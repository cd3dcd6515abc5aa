"""NumPy kernels for the hot layers, in channels-last memory, one module per op family.

The generic code in :mod:`xpnet.functional` is the definition of every op and runs on any
backend. On NumPy three things make it slow, and this module avoids them in conv2d, max and
average pooling (stride == kernel, no padding), sigmoid and ReLU's backward:

- im2col of a channels-first (N, C, H, W) image copies rows of only ``out_w`` floats (8 for
  the default model's second conv layer); here the columns are cut from channels-last
  memory, where one window row is ``kernel_w * C_in`` contiguous floats, in ONE copy from
  ``sliding_window_view`` (or, when ``C_in == 1``, as one slice per kernel offset, whose
  rows are ``out_w`` long);
- ``np.where`` on a random mask mispredicts a branch per element (4.8 ms for 1.2 million
  floats here, against 0.33 ms for the bitwise AND used instead);
- pooling through a stack of window slices copies the input once more; here windows of
  stride == kernel are a reshape (a view).

With the optional compiled loops (``xpnet[numba]``, :mod:`xpnet.kernels.numba_loops`),
3x3 stride-1 convolutions take Winograd's F(2x2, 3x3) (:mod:`xpnet.kernels.winograd`: 2.25x
fewer multiplies), and max pooling and ReLU's backward run as one pass each instead of
several NumPy passes.

Results are NCHW-*shaped* arrays whose memory is channels-last (N, H, W, C), as PyTorch's
``channels_last`` format: the next layer reads them without a copy. Each kernel is
registered for the op it replaces (``@register("numpy", "conv2d_forward")``), handed out
by :func:`xpnet.kernels.kernel_for` for plain NumPy arrays only, and tested equal to the
generic op by the registry-driven test (``tests/test_kernels.py``).

The modules mirror :mod:`xpnet.functional`: :mod:`.conv`, :mod:`.pool`, :mod:`.batchnorm`
and :mod:`.activation`, with the layout helpers they share in :mod:`._layout`. Importing
this package registers every kernel; its names are re-exported here.
"""

from __future__ import annotations

from ._layout import (
    BACKEND,
    as_nchw,
    channels_last,
    is_channels_last,
    same_layout,
    select,
    zero_where,
)
from .activation import relu_backward, relu_forward, sigmoid_forward
from .batchnorm import SUM_BLOCK, batch_norm_backward, batch_norm_forward, channel_sums, wide_rows
from .conv import (
    BAND_WIDTH,
    COL2IM_CHUNK_BYTES,
    batch_chunks,
    col2im_banded,
    col2im_rows,
    conv2d_backward,
    conv2d_forward,
    im2col_rows,
    pad_channels_last,
)
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    pool_output_like,
    pool_windows,
    reshape_pooling,
)

__all__ = [
    "BACKEND",
    "BAND_WIDTH",
    "COL2IM_CHUNK_BYTES",
    "SUM_BLOCK",
    "as_nchw",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_chunks",
    "batch_norm_backward",
    "batch_norm_forward",
    "channel_sums",
    "channels_last",
    "col2im_banded",
    "col2im_rows",
    "conv2d_backward",
    "conv2d_forward",
    "im2col_rows",
    "is_channels_last",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "pad_channels_last",
    "pool_output_like",
    "pool_windows",
    "relu_backward",
    "relu_forward",
    "reshape_pooling",
    "same_layout",
    "select",
    "sigmoid_forward",
    "wide_rows",
    "zero_where",
]
