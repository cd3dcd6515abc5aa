"""``xpnet info``: the backends usable here, their devices and versions."""

from __future__ import annotations

import argparse
import platform
from typing import Any

from .. import __version__
from .._backend import available_backends, device_info


def add_parser(commands: Any) -> None:
    """The ``info`` subcommand (no options)."""
    commands.add_parser("info", help="backends, devices and versions")


def run(args: argparse.Namespace) -> int:
    """Print the backends usable here, their devices and versions; the exit code."""
    print(f"xpnet {__version__}, Python {platform.python_version()} on {platform.machine()}")
    for name, text in device_info().items():
        print(f"  {name:<17} {text}")
    print(f"available: {', '.join(available_backends())}")
    return 0
