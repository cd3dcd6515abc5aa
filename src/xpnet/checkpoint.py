"""Checkpoints: one ``.npz`` of NumPy arrays plus the architecture and training state as JSON.

Written atomically (a temporary file in the same folder, then ``os.replace``), so a crash
or Ctrl-C mid-write never leaves a half-written checkpoint where the last good one was.
Portable across backends: the arrays are NumPy, the model is rebuilt from its spec.

A checkpoint is untrusted input (people share them): :func:`load_checkpoint` refuses a
damaged or crafted file with one :class:`CheckpointError` line naming the file and what
is wrong, and allocates nothing the file does not hold. In order: each array's ``.npy``
header is checked against the bytes behind it (:mod:`xpnet._archive`); the metadata must
be JSON of the expected types, nested at most :data:`MAX_DEPTH` deep; the architecture's
layer types must be known and the shapes its configs give (``Module.state_shapes``) must
equal the file's arrays before the model is built; and the built model must run on one
image of the input shape the file records (``fit`` records it; the CLI asks for MNIST's
where an older file has none) before the model is handed out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._archive import ArchiveError, read_arrays
from ._backend import asarray, backend_of
from ._files import write_atomically
from ._validation import pair
from .kernels import use_fast_paths
from .nn import Module, from_spec
from .nn.module import check_state_fits

FORMAT_VERSION = 1
MAX_DEPTH = 64
"""Layers nest at most this deep in a checkpoint's architecture (``mnist_resnet``: 4)."""
MAX_INPUT_VALUES = 1 << 24
"""A recorded input shape holds at most this many values per image (16.7 million)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing parts, damaged or crafted; the message
    names the file and what is wrong."""


def save_checkpoint(
    path: str | Path,
    model: Module,
    *,
    optimizer: Any = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
    input_shape: Sequence[int] | None = None,
) -> Path:
    """Write ``model`` (spec and weights), optimizer/scheduler state and ``state`` to ``path``.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file to write (atomically; its folder is created).
    model : Module
        The net: its spec and its weights as NumPy arrays.
    optimizer, scheduler : optional
        Their state, for resuming.
    state : dict, optional
        JSON-friendly training state (epoch, step, history, ...).
    input_shape : sequence of int, optional
        One image's shape without the batch axis (e.g. ``(1, 28, 28)``), recorded so that
        :func:`load_checkpoint` can check the model runs on it.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "architecture": model.spec(),
        "state": state or {},
    }
    if input_shape is not None:
        meta["input_shape"] = [int(size) for size in input_shape]
    if optimizer is not None:
        opt_state = optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in opt_state["state"].items()})
        meta["optimizer"] = {
            "type": type(optimizer).__name__,
            "lr": opt_state["lr"],
            "step_count": opt_state["step_count"],
        }
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return write_atomically(path, lambda handle: np.savez(handle, **arrays))


class Checkpoint:
    """A loaded checkpoint: ``model`` (on the requested backend) and the saved state.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file, read as untrusted input.
    backend : str, optional
        Where to build the model (default :func:`xpnet.get_backend`).
    input_shape : sequence of int, optional
        One image's shape to check the model runs on, where the file records none.

    Attributes
    ----------
    model : Module
        The net, its weights loaded.
    state : dict
        The JSON training state saved with it (epoch, step, history, ...).
    meta : dict
        Everything the file's metadata holds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        backend: str | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        self.path = Path(path)
        arrays, meta = _read(self.path)
        self.meta = meta
        self.state: dict[str, Any] = meta.get("state", {})
        weights = {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
        _check_weights(self.path, meta["architecture"], weights)
        try:
            self.model = from_spec(meta["architecture"], backend=backend)
            self.model.load_state_dict(weights)
        except (KeyError, ValueError, TypeError, RecursionError) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise CheckpointError(
                f"{self.path}: its weights do not fit the architecture it records ({reason})"
            ) from None
        recorded = meta.get("input_shape", input_shape)
        if recorded is not None:
            _check_runs(self.path, self.model, recorded)
        self._optim_arrays = {
            k.removeprefix("optim/"): v for k, v in arrays.items() if k.startswith("optim/")
        }

    def restore_optimizer(self, optimizer: Any, scheduler: Any = None) -> None:
        """Load the saved optimizer (and scheduler) state into freshly built ones.

        Parameters
        ----------
        optimizer : Optimizer
            Of the saved type, over the model's parameters.
        scheduler : LRScheduler, optional
            Restored too, where the checkpoint holds one.
        """
        saved = self.meta.get("optimizer")
        if saved is None:
            raise CheckpointError(f"{self.path}: holds no optimizer state")
        if saved.get("type") != type(optimizer).__name__:
            raise CheckpointError(
                f"{self.path}: optimizer was {saved.get('type')}; got {type(optimizer).__name__}"
            )
        try:
            optimizer.load_state_dict(
                {"lr": saved["lr"], "step_count": saved["step_count"], "state": self._optim_arrays}
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"{self.path}: its optimizer state does not fit ({exc})"
            ) from None
        if scheduler is not None and "scheduler" in self.meta:
            try:
                scheduler.load_state_dict(self.meta["scheduler"])
            except (KeyError, ValueError, TypeError) as exc:
                raise CheckpointError(
                    f"{self.path}: its scheduler state does not fit ({exc})"
                ) from None


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of the checkpoint at ``path``; one ``CheckpointError``
    line naming the file and what is wrong with it when it is not a readable checkpoint."""
    try:
        handle = path.open("rb")  # our own handle: np.load(path) leaks one on a bad archive
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise CheckpointError(
            f"{path}: cannot read the checkpoint ({exc.strerror or exc})"
        ) from None
    with handle:
        head = handle.read(4)
        if not head:
            raise CheckpointError(f"{path}: not a checkpoint: the file is empty (0 bytes)")
        if head != b"PK\x03\x04":
            raise CheckpointError(
                f"{path}: not a checkpoint: not an .npz (zip) archive (it starts with {head!r})"
            )
        handle.seek(0)
        try:
            arrays = read_arrays(handle)
        except ArchiveError as exc:
            raise CheckpointError(f"{path}: damaged checkpoint: the .npz archive {exc}") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: not an xpnet checkpoint: no 'meta' entry in the archive")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        _check_meta(meta)
    except RecursionError:
        raise CheckpointError(
            f"{path}: damaged checkpoint: its metadata nests deeper than Python parses"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: damaged checkpoint: its metadata is unreadable ({exc})"
        ) from None
    return arrays, meta


def _check_meta(meta: Any) -> None:
    """The metadata's top-level fields have the types :func:`save_checkpoint` writes."""
    if not isinstance(meta, dict) or "architecture" not in meta:
        raise ValueError("no architecture recorded")
    if meta.get("format", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"format {meta.get('format')!r}; this xpnet reads {FORMAT_VERSION}")
    for key in ("architecture", "state", "optimizer", "scheduler"):
        if key in meta and not isinstance(meta[key], dict):
            raise ValueError(f"{key!r} must be an object; got {type(meta[key]).__name__}")
    shape = meta.get("input_shape")
    if shape is not None:
        _input_shape(shape)


def _input_shape(shape: Any) -> tuple[int, ...]:
    """A recorded input shape: 1 to 3 sizes >= 1, at most :data:`MAX_INPUT_VALUES` values."""
    ok = (
        isinstance(shape, (list, tuple))
        and 1 <= len(shape) <= 3
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    )
    if not ok:
        raise ValueError(f"input_shape must be 1 to 3 sizes >= 1; got {shape!r}")
    if math.prod(shape) > MAX_INPUT_VALUES:
        raise ValueError(f"input_shape {shape} holds over {MAX_INPUT_VALUES:,} values")
    return tuple(shape)


def _check_weights(path: Path, architecture: Any, weights: Mapping[str, np.ndarray]) -> None:
    """The architecture's layers are known and the shapes they give equal the file's
    weights, checked before the model is built (building allocates every weight)."""
    try:
        expected = _state_shapes(architecture, "", 0)
    except RecursionError:
        raise CheckpointError(f"{path}: damaged checkpoint: layers nest too deep") from None
    except (KeyError, ValueError, TypeError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CheckpointError(f"{path}: its architecture is invalid ({reason})") from None
    if expected is None:  # a layer of the user's own without state_shapes: built as it says
        return
    try:
        check_state_fits(expected, weights)
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CheckpointError(
            f"{path}: its weights do not fit the architecture it records ({reason})"
        ) from None


def _state_shapes(spec: Any, prefix: str, depth: int) -> dict[str, tuple[int, ...]] | None:
    """Every parameter's and buffer's shape in the layer ``spec`` and its children, named
    as ``state_dict`` names them; ``None`` if a layer does not say."""
    if depth > MAX_DEPTH:
        raise ValueError(f"layers nest deeper than {MAX_DEPTH}")
    if not isinstance(spec, dict):
        raise TypeError(f"a layer must be an object; got {type(spec).__name__} at {prefix!r}")
    kind, config = spec.get("type"), spec.get("config", {})
    cls = Module.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown layer type {kind!r} at {prefix or 'the top'!r}")
    if not isinstance(config, dict):
        raise TypeError(f"the config of {kind} must be an object; got {type(config).__name__}")
    children: list[tuple[str, Any]] = []
    if kind == "Sequential":
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise TypeError(f"Sequential's layers must be a list; got {type(layers).__name__}")
        children = [(str(index), layer) for index, layer in enumerate(layers)]
    elif kind == "Residual":
        children = [("block", config.get("block"))]
        if config.get("shortcut") is not None:
            children.append(("shortcut", config["shortcut"]))
    elif any(_holds_a_layer(value) for value in config.values()):
        if "." not in str(kind):  # xpnet's other layers take no layers
            raise TypeError(f"the config of {kind} holds a layer")
        return None  # a container of the user's own: built as it says
    own = cls.state_shapes(config) if not children else {}
    if own is None:
        return None
    if kind == "Conv2d":  # the padded image is allocated: bound it by the weights' size
        padding = pair(config.get("padding", 0), "padding", "Conv2d", minimum=0)
        if any(pad >= size for pad, size in zip(padding, own["weight"][2:])):
            raise ValueError(
                f"Conv2d at {prefix or 'the top'!r}: padding {padding} must be smaller than "
                f"the kernel {own['weight'][2:]} in a checkpoint"
            )
    shapes = {f"{prefix}{name}": shape for name, shape in own.items()}
    for name, child in children:
        inner = _state_shapes(child, f"{prefix}{name}.", depth + 1)
        if inner is None:
            return None
        shapes.update(inner)
    return shapes


def _holds_a_layer(value: Any) -> bool:
    """Whether a config value is, or lists, something from_spec would build as a layer."""
    items = value if isinstance(value, list) else [value]
    return any(isinstance(item, (dict, list)) for item in items)


def _check_runs(path: Path, model: Module, input_shape: Any) -> None:
    """One image of ``input_shape`` runs through ``model`` (eval mode, the generic code,
    no weights changed); a model that cannot is refused now rather than mid-run."""
    try:
        shape = _input_shape(input_shape)
    except ValueError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: {exc}") from None
    params = model.parameters()
    was_training = model.training
    try:
        like = params[0].data if params else None
        backend = None if like is None else backend_of(like)
        image = asarray(np.zeros((1, *shape), dtype=np.float32), backend=backend)
        with use_fast_paths(False):
            model.eval()(image)
    except (ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: the model it records cannot run on its input shape {shape} ({exc})"
        ) from None
    finally:
        model.train(was_training)


def load_checkpoint(
    path: str | Path, *, backend: str | None = None, input_shape: Sequence[int] | None = None
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`, its model on ``backend``.

    The file is read as untrusted input (see the module's docstring): nothing is allocated
    beyond what it holds, and a damaged or crafted file is one :class:`CheckpointError`.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file.
    backend : str, optional
        Where to build the model (default :func:`xpnet.get_backend`).
    input_shape : sequence of int, optional
        One image's shape to check the model runs on where the file records none (files
        written before the record); the recorded one wins.

    Returns
    -------
    Checkpoint
        ``.model``, ``.state`` and ``.meta``; ``.restore_optimizer`` for resuming.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        A ``ValueError`` naming the file and what is wrong with it.
    """
    return Checkpoint(path, backend=backend, input_shape=input_shape)


__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint"]
