"""``xpnet evaluate``: a checkpoint's loss and accuracy on the MNIST test set."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._backend import BACKENDS
from ..inference import evaluate
from ._common import DEVICE_HELP, OneLineHelp, load_data, open_checkpoint


def add_parser(commands: Any) -> None:
    """The ``evaluate`` subcommand and its options."""
    ev = commands.add_parser(
        "evaluate", help="test accuracy of a checkpoint", formatter_class=OneLineHelp
    )
    ev.add_argument("checkpoint", type=Path, help="a model.npz written by xpnet train")
    ev.add_argument("--backend", choices=BACKENDS, default="numpy", help="where to evaluate")
    ev.add_argument("--device", help=DEVICE_HELP)
    ev.add_argument(
        "--data-dir", type=Path, help="folder of the four MNIST IDX .gz files (default: shipped)"
    )
    ev.add_argument("--limit", type=int, help="use only the first N test images (default: all)")


def run(args: argparse.Namespace) -> int:
    """Print the checkpoint's loss and accuracy on the MNIST test set; the exit code."""
    ckpt = open_checkpoint(args)
    _, test_set = load_data(args.data_dir, args.limit)
    metrics = evaluate(ckpt.model, *test_set)
    print(
        f"{args.checkpoint} on {args.backend}: {len(test_set[1])} test images, "
        f"loss {metrics['loss']:.4f}"
    )
    print(f"test_accuracy: {metrics['accuracy']:.4f}")
    return 0
