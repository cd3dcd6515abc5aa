"""``xpnet summary``: a model's layers, output shapes, parameters and multiply-adds."""

from __future__ import annotations

import argparse
from typing import Any

from .. import models
from ._common import OneLineHelp


def add_parser(commands: Any) -> None:
    """The ``summary`` subcommand and its options."""
    su = commands.add_parser(
        "summary",
        help="layers, output shapes, parameters, multiply-adds",
        formatter_class=OneLineHelp,
    )
    su.add_argument("--model", choices=list(models.MODELS), default="mnist_cnn", help="net")


def run(args: argparse.Namespace) -> int:
    """Print the model's layer table; the exit code."""
    print(models.build(args.model, backend="numpy").summary(models.MNIST_SHAPE))
    return 0
