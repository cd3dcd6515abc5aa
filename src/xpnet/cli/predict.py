"""``xpnet predict``: the digit in each image file, by a checkpoint."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._backend import BACKENDS
from ..datasets import MNIST_MEAN, MNIST_STD
from ..inference import predict
from ._common import DEVICE_HELP, CLIError, OneLineHelp, open_checkpoint


def add_parser(commands: Any) -> None:
    """The ``predict`` subcommand and its options."""
    pr = commands.add_parser(
        "predict", help="classify digit images (PNG, JPEG, ...)", formatter_class=OneLineHelp
    )
    pr.add_argument("checkpoint", type=Path, help="a model.npz written by xpnet train")
    pr.add_argument("images", type=Path, nargs="+", help="image files, any size")
    pr.add_argument("--backend", choices=BACKENDS, default="numpy", help="where to run")
    pr.add_argument("--device", help=DEVICE_HELP)


MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
"""The largest image ``xpnet predict`` decodes (16.7 million pixels): a few hundred KB of
PNG can claim 20000 x 20000 pixels (1.6 GB decoded); larger ones are refused unread."""
_LIMIT = (
    f"xpnet predict reads at most {MAX_IMAGE_PIXELS:,} pixels ({MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE})"
)


def load_image(path: Path, normalize: tuple[float, float]) -> np.ndarray:
    """A digit image of any size up to :data:`MAX_IMAGE_PIXELS` as (1, 28, 28) float32,
    white digit on black like MNIST; a :class:`CLIError` line for anything unreadable."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: the check below refuses
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise CLIError(f"{path}: image of {width} x {height} pixels; {_LIMIT}")
                gray = image.convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    except CLIError:
        raise
    except Image.DecompressionBombError as exc:  # over twice PIL's own limit
        raise CLIError(f"{path}: {exc.args[0].split(',')[0]}; {_LIMIT}") from None
    except Exception as exc:  # PIL's decoders raise many types on a damaged file
        raise CLIError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    pixels = np.asarray(gray, dtype=np.float32) / 255.0
    if pixels.mean() > 0.5:  # dark digit on a light background: invert to MNIST's convention
        pixels = 1.0 - pixels
    mean, std = normalize
    return ((pixels - mean) / std)[None, :, :].astype(np.float32)


def run(args: argparse.Namespace) -> int:
    """Print the digit and its probability for each image; the exit code."""
    ckpt = open_checkpoint(args)
    normalize = tuple(ckpt.state.get("normalize", [MNIST_MEAN, MNIST_STD]))
    images = np.stack([load_image(p, normalize) for p in args.images])
    probs = predict(ckpt.model, images)
    for path, row in zip(args.images, probs):
        print(f"{path}: {int(row.argmax())} (p={row.max():.4f})")
    return 0
