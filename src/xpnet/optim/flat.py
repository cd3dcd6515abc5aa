"""All of an optimizer's parameters as views into ONE flat buffer, so that an update is a
handful of whole-buffer operations instead of a handful per parameter.

On a GPU every array operation costs the host ~5-10 us, so Adam over the default model's 8
parameters one at a time (~10 operations each) costs more host time than the arithmetic.
:class:`FlatParameters` gives each parameter's ``data`` as a view of one contiguous
buffer, gathers the gradients into one matching buffer with a single ``concat``, and keeps
the optimizer state (momentum, Adam's moments) as flat buffers too, updated in place; each
parameter's entry in ``optimizer.state`` is a view into those, so checkpoints are as
before. The same flat gradient is what a data-parallel run reduces in one collective.

It is used where the backend's views alias their base (probed once per namespace and
device: NumPy, CuPy, torch and array-api-strict do) and all parameters share one dtype
and device; elsewhere the optimizers update one parameter at a time, with the same
formulas in the same order, so both give bit-identical results.

Anything that replaces a parameter's ``data`` (``Module.to``, ``load_state_dict``) breaks
its view; the next step notices (an identity check) and packs the buffer again.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from array_api_compat import array_namespace, device

from .._typing import Array, Namespace
from ..nn.module import Parameter

_ALIASING: dict[tuple[str, str], bool] = {}


def views_alias(xp: Namespace, like: Array) -> bool:
    """Whether a reshaped slice of an array of ``xp`` on ``like``'s device sees in-place
    updates of its base (tried once per namespace and device, with a 4-element array)."""
    key = (xp.__name__, str(device(like)))
    known = _ALIASING.get(key)
    if known is None:
        try:
            base = xp.zeros(4, dtype=like.dtype, device=device(like))
            view = xp.reshape(base[1:3], (2, 1))
            base += 1.0
            known = bool(view[0, 0] == 1.0)
        except Exception:  # a backend that refuses in-place updates or views
            known = False
        _ALIASING[key] = known
    return known


class FlatParameters:
    """``params`` packed into one flat buffer ``data`` (see the module docstring).

    Parameters
    ----------
    params : list of Parameter
        Same namespace, dtype and device (:meth:`possible` says whether they are).
    """

    def __init__(self, params: list[Parameter]) -> None:
        self.params = params
        first = params[0].data
        self.xp = array_namespace(first)
        self.sizes = [math.prod(p.data.shape) for p in params]
        self.offsets = [0, *itertools.accumulate(self.sizes[:-1])]
        self.data: Array = None
        self._views: list[Array] = []
        self.pack()

    @staticmethod
    def possible(params: list[Parameter]) -> bool:
        """One namespace, dtype and device, whose views alias (else: one at a time)."""
        first = params[0].data
        try:
            xp = array_namespace(*(p.data for p in params))
        except TypeError:  # several array libraries
            return False
        same = all(p.data.dtype == first.dtype and device(p.data) == device(first) for p in params)
        return same and views_alias(xp, first)

    def views(self, flat: Array) -> list[Array]:
        """``flat`` cut into arrays of the parameters' shapes (views, no copy)."""
        xp = self.xp
        return [
            xp.reshape(flat[start : start + size], tuple(p.data.shape))
            for p, start, size in zip(self.params, self.offsets, self.sizes)
        ]

    def gather(self, arrays: list[Array]) -> Array:
        """One flat array of ``arrays`` (one per parameter, in order): one ``concat``."""
        xp = self.xp
        return xp.concat([xp.reshape(a, (-1,)) for a in arrays])

    def pack(self) -> None:
        """Copy the parameters' current values into a new buffer and view them from it."""
        self.data = self.gather([p.data for p in self.params])
        self._views = self.views(self.data)
        for param, view in zip(self.params, self._views):
            param.data = view

    def ensure_packed(self) -> None:
        """Pack again if anything replaced a parameter's ``data`` since the last pack."""
        if any(p.data is not v for p, v in zip(self.params, self._views)):
            if not self.possible(self.params):
                raise TypeError("FlatParameters: the parameters no longer share one dtype/device")
            self.pack()

    def gradient(self) -> Array | None:
        """Every parameter's gradient in one flat buffer, or ``None`` if one has none."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            return None
        return self.gather(grads)


class FlatState:
    """Per-parameter optimizer state (``state[i][key]``) kept as flat buffers: each entry
    a view of ``buffers[key]``, so ``Optimizer.state_dict`` sees the same arrays."""

    def __init__(self, flat: FlatParameters, state: list[dict[str, Any]]) -> None:
        self.flat = flat
        self.state = state
        self.buffers: dict[str, Array] = {}
        self._views: dict[str, list[Array]] = {}

    def get(self, key: str) -> Array | None:
        """The flat buffer for ``key``; re-gathered if the per-parameter entries were
        replaced (a loaded checkpoint, a per-parameter step); ``None`` before the first."""
        buffer = self.buffers.get(key)
        entries = [s.get(key) for s in self.state]
        if buffer is not None and all(e is v for e, v in zip(entries, self._views[key])):
            return buffer
        if any(e is None for e in entries):
            return None
        self.set(key, self.flat.gather(entries))
        return self.buffers[key]

    def set(self, key: str, buffer: Array) -> None:
        """Make ``buffer`` the state ``key`` and each parameter's entry a view of it."""
        self.buffers[key] = buffer
        views = self.flat.views(buffer)
        self._views[key] = views
        for entry, view in zip(self.state, views):
            entry[key] = view
