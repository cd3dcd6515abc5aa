"""``Module.summary``: each layer's output shape, parameters and multiply-adds, as Keras'
``model.summary()`` and torchinfo print them."""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple

from array_api_compat import array_namespace, device


class LayerRow(NamedTuple):
    """One line of a summary: for one input image (batch axis left out)."""

    name: str
    output_shape: tuple[int, ...]
    parameters: int
    multiply_adds: int


def _same(value: Any, default: Any) -> bool:
    """``value`` equals the constructor's ``default``, a pair ``(k, k)`` counting as ``k``."""
    if (
        isinstance(value, (tuple, list))
        and isinstance(default, int)
        and not isinstance(default, bool)
    ):
        return all(v == default for v in value)
    return bool(value == default)


def _short(value: Any) -> str:
    """A pair of equal sizes as one number (``(5, 5)`` as ``5``), anything else as repr."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return repr(value[0])
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def brief(layer: Any) -> str:
    """A layer in a few words: the arguments without a default by value, the others only
    where they differ from it (``Conv2d(1, 16, 5)``, ``Conv2d(16, 32, 3, padding=1)``)."""
    config = layer.config()
    try:
        signature = inspect.signature(type(layer))
    except (TypeError, ValueError):
        return repr(layer)
    words = []
    for name, value in config.items():
        param = signature.parameters.get(name)
        if param is None or param.default is inspect.Parameter.empty:
            words.append(_short(value))
        elif not _same(value, param.default):
            words.append(f"{name}={_short(value)}")
    return f"{type(layer).__name__}({', '.join(words)})"


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
            name = type(layer).__name__ if layer.children() else brief(layer)  # one line
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
