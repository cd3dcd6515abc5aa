"""``Residual``: ``block(x) + shortcut(x)``, the building block of ResNets (He et al., 2016)."""

from __future__ import annotations

from typing import Any

from .._typing import Array
from .module import Module


class Residual(Module):
    """``block(x) + shortcut(x)``, the shortcut the identity by default.

    The backward sends the output's gradient through both paths and sums their input
    gradients. Parameters are named ``"block.<name>"`` and ``"shortcut.<name>"`` (a
    ``torch.nn.Module`` with attributes ``block`` and ``shortcut`` has the same keys).

    Parameters
    ----------
    block : Module
        E.g. ``Sequential(Conv2d, BatchNorm2d, ReLU, Conv2d, BatchNorm2d)``.
    shortcut : Module, optional
        E.g. a 1x1 ``Conv2d`` where the block changes the shape; default the identity.
    """

    def __init__(self, block: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        for name, value in (("block", block), ("shortcut", shortcut)):
            if value is not None and not isinstance(value, Module):
                raise TypeError(
                    f"Residual: {name} must be an xpnet Module; got {type(value).__name__}"
                )
        self.block, self.shortcut = block, shortcut

    def children(self) -> list[Module]:
        return [self.block] + ([] if self.shortcut is None else [self.shortcut])

    def named_children(self) -> list[tuple[str, Module]]:
        named = [("block", self.block)]
        return named + ([] if self.shortcut is None else [("shortcut", self.shortcut)])

    def forward(self, x: Array) -> Array:
        out = self.block(x)
        skip = x if self.shortcut is None else self.shortcut(x)
        if tuple(out.shape) != tuple(skip.shape):
            raise ValueError(
                f"Residual: the block's output {tuple(out.shape)} and the shortcut's "
                f"{tuple(skip.shape)} differ in shape; give a shortcut that matches"
            )
        return out + skip

    def counted_forward(self, x: Array) -> tuple[Array, int]:
        out, count = self.block.counted_forward(x)
        skip, extra = (x, 0) if self.shortcut is None else self.shortcut.counted_forward(x)
        return out + skip, count + extra

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        keyword = {} if input_grad else {"input_grad": False}
        through_block = self.block.backward(grad_out, **keyword)
        if self.shortcut is None:
            through_shortcut = grad_out
        else:
            through_shortcut = self.shortcut.backward(grad_out, **keyword)
        return through_block + through_shortcut if input_grad else None

    def config(self) -> dict[str, Any]:
        shortcut = None if self.shortcut is None else self.shortcut.spec()
        return {"block": self.block.spec(), "shortcut": shortcut}

    def __repr__(self) -> str:
        inner = f"\n  (block): {self.block!r}"
        if self.shortcut is not None:
            inner += f"\n  (shortcut): {self.shortcut!r}"
        return f"Residual({inner}\n)"
