"""What the commands share: one-line errors, the help format, backend and device, the data."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from .._backend import check_backend_name
from ..checkpoint import load_checkpoint
from ..datasets import load_mnist
from ..models import MNIST_SHAPE

DEVICE_HELP = "torch device, e.g. cuda or cuda:1 (default: the backend's default device)"


class OneLineHelp(argparse.HelpFormatter):
    """``--help`` with one line per option, ending in its default where it has one."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=40, width=240)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.choices is not None:
            text += f": {', '.join(map(str, action.choices))}"
        absent = action.default is None or action.default is False
        if "default" not in text and not absent and action.default is not argparse.SUPPRESS:
            text += " (default: %(default)s)"
        return text

    def _metavar_formatter(self, action: argparse.Action, default_metavar: str) -> Any:
        if action.choices is not None and action.metavar is None:  # choices go in the help
            return lambda size: ("NAME",) * size
        return super()._metavar_formatter(action, default_metavar)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def usable_backend(name: str) -> str:
    """``name`` if that backend is usable here, else a one-line :class:`CLIError`."""
    try:
        return check_backend_name(name)
    except (ValueError, RuntimeError) as exc:
        raise CLIError(str(exc)) from None


def placement(args: argparse.Namespace) -> tuple[str, Any]:
    """The usable backend and the device (``--device``, torch only) to run on."""
    backend = usable_backend(args.backend)
    if args.device is None:
        return backend, None
    if backend != "torch":
        raise CLIError(
            f"--device is for --backend torch (e.g. cuda); {backend} runs on its default "
            f"device; got --device {args.device}"
        )
    import torch

    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise CLIError(f"--device {args.device}: {str(exc).splitlines()[0]}") from None
    return backend, device


def check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option in range, as one line (exit 2) before any work starts."""
    ints = {"--epochs": 1, "--batch-size": 1, "--limit": 1, "--val": 0, "--seed": 0}
    for option, minimum in ints.items():
        value = getattr(args, option[2:].replace("-", "_"), None)
        if value is not None and value < minimum:
            raise CLIError(f"{option} must be >= {minimum}; got {value}")
    lr = getattr(args, "lr", None)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise CLIError(f"--lr must be a finite number > 0; got {lr}")


def first_n(
    arrays: tuple[np.ndarray, np.ndarray], limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return arrays
    return arrays[0][:limit], arrays[1][:limit]


def load_data(data_dir: Path | None, limit: int | None) -> tuple[Any, Any]:
    try:
        train, test = load_mnist(data_dir, normalize=True)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return first_n(train, limit), first_n(test, limit)


def open_checkpoint(args: argparse.Namespace) -> Any:
    """The checkpoint ``args.checkpoint``, its model on ``--backend`` and ``--device``."""
    backend, device = placement(args)
    try:
        ckpt = load_checkpoint(args.checkpoint, backend=backend, input_shape=MNIST_SHAPE)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    recorded = ckpt.meta.get("input_shape")
    if recorded is not None and tuple(recorded) != MNIST_SHAPE:
        raise CLIError(
            f"{args.checkpoint}: its model takes images of shape {tuple(recorded)}; "
            f"xpnet {args.command} gives it MNIST's {MNIST_SHAPE}"
        )
    ckpt.model.to(backend, device=device)
    return ckpt
