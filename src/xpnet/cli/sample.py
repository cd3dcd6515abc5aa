"""``xpnet sample``: an MNIST test digit as an image file, to try ``xpnet predict`` on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import load_mnist
from ._common import CLIError, OneLineHelp


def add_parser(commands: Any) -> None:
    """The ``sample`` subcommand and its options."""
    sa = commands.add_parser(
        "sample",
        help="write a test-set digit as an image (dark on light, as drawn) to try predict on",
        formatter_class=OneLineHelp,
    )
    sa.add_argument("path", type=Path, help="the image file to write (.png, .jpg, ...)")
    sa.add_argument(
        "--index", type=int, default=0, help="which of the 10,000 test images (default: 0)"
    )
    sa.add_argument("--scale", type=int, default=4, help="pixels per MNIST pixel (default: 4)")


def run(args: argparse.Namespace) -> int:
    """Write the image and print its label; the exit code."""
    from PIL import Image

    _, (images, labels) = load_mnist()
    if not 0 <= args.index < len(labels):
        raise CLIError(f"--index must be in [0, {len(labels) - 1}]; got {args.index}")
    if not 1 <= args.scale <= 64:
        raise CLIError(f"--scale must be in [1, 64]; got {args.scale}")
    pixels = np.round(255.0 * (1.0 - images[args.index, 0])).astype(np.uint8)  # dark on light
    side = 28 * args.scale
    image = Image.fromarray(pixels).resize((side, side), Image.Resampling.NEAREST)
    try:
        image.save(args.path)
    except (OSError, ValueError) as exc:  # no such folder, an unknown extension
        raise CLIError(f"cannot write {args.path}: {exc}") from None
    print(f"wrote {args.path}: test image {args.index}, a {int(labels[args.index])}")
    return 0
