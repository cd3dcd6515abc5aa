"""Count the device operations a training step issues, on the CPU, with torch.profiler.

On a GPU a small net at batch 128 is bound by how many operations the host issues (each
CuPy or torch call costs ~5-10 us of host time and launches one or more kernels), not by
arithmetic. That number can be counted here: run the step on torch CPU tensors under
``torch.profiler`` and count the top-level ``aten::`` operations (those not called from
inside another ``aten::`` op) that would launch work on a device. Views and metadata
(``view``, ``reshape`` that does not copy, ``permute``, slicing, ``empty``, ...) launch
nothing and are not counted; a view-like call that copies (``reshape`` of a
non-contiguous tensor, ``contiguous``) is. Reads back to the host (``item``,
``is_nonzero``: a ``float()``, ``bool()`` or ``if`` on a device value) are counted apart,
as host syncs.

Used by ``benchmarks/launches.py`` (the table for every model) and by
``tests/test_launches.py`` (the budget that keeps the count from creeping back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VIEW_OPS = frozenset(
    "aten::" + name
    for name in [
        "view",
        "reshape",
        "_reshape_alias",
        "_unsafe_view",
        "permute",
        "transpose",
        "t",
        "numpy_T",
        "mT",
        "matrix_H",
        "swapaxes",
        "swapdims",
        "movedim",
        "slice",
        "select",
        "expand",
        "expand_as",
        "as_strided",
        "unsqueeze",
        "squeeze",
        "alias",
        "detach",
        "lift_fresh",
        "lift",
        "flatten",
        "unflatten",
        "contiguous",
        "view_as",
        "split",
        "chunk",
        "unbind",
        "narrow",
        "empty",
        "empty_like",
        "empty_strided",
        "resolve_conj",
        "resolve_neg",
        "result_type",
        "size",
        "stride",
        "dim",
        "is_floating_point",
        "to",
        "_to_copy",
        "type_as",
    ]
)
"""Operations that launch nothing by themselves (views, metadata, allocation); counted
only when something they call copies (e.g. ``reshape`` -> ``clone``)."""

SYNC_OPS = frozenset({"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"})
"""Reads of a device value back to the host."""


@dataclass
class Count:
    """What one profiled call issued."""

    ops: int = 0
    syncs: int = 0
    by_name: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "syncs": self.syncs, "by_name": dict(self.by_name)}


def _launches(event: Any) -> bool:
    """Whether ``event`` (or, for a view-like op, something it called) does device work.

    Only ``aten::`` operations do; a profiler record of another kind (``detach``'s inner
    ``detach``) is looked through."""
    if event.name.startswith("aten::") and event.name not in VIEW_OPS:
        return True
    return any(_launches(child) for child in event.cpu_children)


def _has_aten_ancestor(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def count_ops(fn: Callable[[], Any]) -> Count:
    """Run ``fn()`` once under torch.profiler; count its top-level device operations."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    count = Count()
    for event in prof.events():
        if not event.name.startswith("aten::") or _has_aten_ancestor(event):
            continue
        if event.name in SYNC_OPS:
            count.syncs += 1
        elif _launches(event):
            count.ops += 1
            count.by_name[event.name] += 1
    return count
