"""``Module.summary``: each layer's output shape, parameters and multiply-adds, as Keras'
``model.summary()`` and torchinfo print them."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from array_api_compat import array_namespace, device


class LayerRow(NamedTuple):
    """One line of a summary: for one input image (batch axis left out)."""

    name: str
    output_shape: tuple[int, ...]
    parameters: int
    multiply_adds: int


def layer_rows(model: Any, input_shape: tuple[int, ...]) -> list[LayerRow]:
    """Run one zero image of ``input_shape`` (no batch axis) through a Module ``model``'s layers
    (its children in order, or the model itself) on its backend, recording each row."""
    params = model.parameters()
    if not params:
        raise ValueError("summary: the model has no parameters to take a backend from")
    like = params[0].data
    xp = array_namespace(like)
    x = xp.zeros((1, *input_shape), dtype=like.dtype, device=device(like))
    layers = model.children() or [model]
    rows = []
    was_training = model.training
    model.eval()
    try:
        for index, layer in enumerate(layers):
            out, macs = layer.counted_forward(x)
            count = sum(math.prod(p.shape) for p in layer.parameters())
            name = type(layer).__name__ if layer.children() else repr(layer)  # one line
            rows.append(LayerRow(f"{index}: {name}", tuple(out.shape[1:]), count, macs))
            x = out
    finally:
        model.train(was_training)
    return rows


def format_summary(rows: list[LayerRow], input_shape: tuple[int, ...]) -> str:
    """The rows as a fixed-width table with totals."""
    width = max(len("layer"), *(len(row.name) for row in rows))
    lines = [
        f"input shape {input_shape} (one image; the batch axis is left out)",
        f"{'layer':<{width}}  {'output shape':<16}{'params':>12}{'mult-adds':>14}",
        "-" * (width + 44),
    ]
    for row in rows:
        shape = str(row.output_shape)
        lines.append(
            f"{row.name:<{width}}  {shape:<16}{row.parameters:>12,}{row.multiply_adds:>14,}"
        )
    params = sum(row.parameters for row in rows)
    macs = sum(row.multiply_adds for row in rows)
    lines += ["-" * (width + 44), f"{'total':<{width}}  {'':<16}{params:>12,}{macs:>14,}"]
    return "\n".join(lines)
