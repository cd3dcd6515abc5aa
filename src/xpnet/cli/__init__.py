"""The ``xpnet`` command: train, evaluate, predict, sample, summary, export, info.

One module per command, each with ``add_parser(commands)`` (its options) and ``run(args)``
(returns the exit code): :mod:`~xpnet.cli.train`, :mod:`~xpnet.cli.evaluate`,
:mod:`~xpnet.cli.predict`, :mod:`~xpnet.cli.sample`, :mod:`~xpnet.cli.summary`,
:mod:`~xpnet.cli.export` and
:mod:`~xpnet.cli.info`; what they share (one-line errors, the help format, backend and
device, the data) is in :mod:`~xpnet.cli._common`. A :class:`CLIError` is printed as one
line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from . import evaluate, export, info, predict, sample, summary, train
from ._common import CLIError, check_numbers
from .predict import load_image
from .train import write_report

DESCRIPTION = "The ``xpnet`` command: train, evaluate, predict, sample, summary, export, info."
COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "sample": sample,
    "summary": summary,
    "export": export,
    "info": info,
}
"""Each command's module, in the order ``xpnet --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``xpnet`` argument parser, with every command's subparser."""
    parser = argparse.ArgumentParser(prog="xpnet", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``xpnet`` command with ``argv`` (default: ``sys.argv[1:]``); its exit code."""
    args = build_parser().parse_args(argv)
    try:
        check_numbers(args)
        return COMMANDS[args.command].run(args)
    except CLIError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (``xpnet summary | head``): no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not fail too
        return 1
    except Exception:
        if getattr(args, "distributed", False):  # the other ranks must not wait forever
            import traceback

            from ..distributed import init

            traceback.print_exc()
            init().abort(1)
        raise


__all__ = ["COMMANDS", "CLIError", "build_parser", "load_image", "main", "write_report"]
