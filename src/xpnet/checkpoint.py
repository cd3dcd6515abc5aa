"""Checkpoints: one ``.npz`` of NumPy arrays plus the architecture and training state as JSON.

Written atomically (a temporary file in the same folder, then ``os.replace``), so a crash
or Ctrl-C mid-write never leaves a half-written checkpoint where the last good one was.
Portable across backends: the arrays are NumPy, the model is rebuilt from its spec.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .nn import Module, from_spec

FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: Module,
    *,
    optimizer: Any = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (spec and weights), optimizer/scheduler state and ``state`` to ``path``.

    ``state`` holds JSON-friendly training state (epoch, step, history, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "architecture": model.spec(),
        "state": state or {},
    }
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class Checkpoint:
    """A loaded checkpoint: ``model`` (on the requested backend) and the saved state."""

    def __init__(self, path: str | Path, *, backend: str | None = None) -> None:
        self.path = Path(path)
        arrays, meta = _read(self.path)
        self.meta = meta
        self.state: dict[str, Any] = meta.get("state", {})
        try:
            self.model = from_spec(meta["architecture"], backend=backend)
            self.model.load_state_dict(
                {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
            )
        except (KeyError, ValueError, TypeError) as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ValueError(
                f"{self.path}: its weights do not fit the architecture it records ({reason})"
            ) from None
        self._optim_arrays = {
            k.removeprefix("optim/"): v for k, v in arrays.items() if k.startswith("optim/")
        }

    def restore_optimizer(self, optimizer: Any, scheduler: Any = None) -> None:
        """Load the saved optimizer (and scheduler) state into freshly built ones."""
        saved = self.meta.get("optimizer")
        if saved is None:
            raise ValueError(f"{self.path}: holds no optimizer state")
        if saved["type"] != type(optimizer).__name__:
            raise ValueError(
                f"{self.path}: optimizer was {saved['type']}; got {type(optimizer).__name__}"
            )
        optimizer.load_state_dict(
            {"lr": saved["lr"], "step_count": saved["step_count"], "state": self._optim_arrays}
        )
        if scheduler is not None and "scheduler" in self.meta:
            scheduler.load_state_dict(self.meta["scheduler"])


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of the checkpoint at ``path``; one ``ValueError`` line
    naming the file and what is wrong with it when it is not a readable checkpoint."""
    try:
        handle = path.open("rb")  # our own handle: np.load(path) leaks one on a bad archive
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ValueError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    with handle:
        head = handle.read(4)
        if not head:
            raise ValueError(f"{path}: not a checkpoint: the file is empty (0 bytes)")
        if head != b"PK\x03\x04":
            raise ValueError(
                f"{path}: not a checkpoint: not an .npz (zip) archive (it starts with {head!r})"
            )
        handle.seek(0)
        try:
            with np.load(handle, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise ValueError(
                f"{path}: damaged checkpoint: the .npz archive is truncated or corrupt "
                f"({type(exc).__name__}: {exc})"
            ) from None
    if "meta" not in arrays:
        raise ValueError(f"{path}: not an xpnet checkpoint: no 'meta' entry in the archive")
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        if not isinstance(meta, dict) or "architecture" not in meta:
            raise ValueError("no architecture recorded")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"{path}: damaged checkpoint: its metadata is unreadable ({exc})"
        ) from None
    return arrays, meta


def load_checkpoint(path: str | Path, *, backend: str | None = None) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`, its model on ``backend``."""
    return Checkpoint(path, backend=backend)
