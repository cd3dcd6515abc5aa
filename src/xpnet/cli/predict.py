"""``xpnet predict``: the digit in each image file, by a checkpoint."""

from __future__ import annotations

import argparse
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


def load_image(path: Path, normalize: tuple[float, float]) -> np.ndarray:
    """A digit image of any size as (1, 28, 28) float32, white digit on black like MNIST."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = image.convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise CLIError(f"{path}: cannot read image ({exc})") from None
    pixels = np.asarray(gray, dtype=np.float32) / 255.0
    if pixels.mean() > 0.5:  # dark digit on a light background: invert to MNIST's convention
        pixels = 1.0 - pixels
    mean, std = normalize
    return ((pixels - mean) / std)[None, :, :].astype(np.float32)


def run(args: argparse.Namespace) -> int:
    ckpt = open_checkpoint(args)
    normalize = tuple(ckpt.state.get("normalize", [MNIST_MEAN, MNIST_STD]))
    images = np.stack([load_image(p, normalize) for p in args.images])
    probs = predict(ckpt.model, images)
    for path, row in zip(args.images, probs):
        print(f"{path}: {int(row.argmax())} (p={row.max():.4f})")
    return 0
