"""``xpnet export``: a checkpoint as an ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint
from ._common import CLIError, OneLineHelp


def add_parser(commands: Any) -> None:
    """The ``export`` subcommand and its options."""
    ex = commands.add_parser(
        "export", help="write a checkpoint as an ONNX file", formatter_class=OneLineHelp
    )
    ex.add_argument("checkpoint", type=Path, help="a model.npz written by xpnet train")
    ex.add_argument("output", type=Path, help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    ex.add_argument(
        "--input-shape",
        default="1,28,28",
        help="C,H,W of the images (the batch size stays dynamic)",
    )


def run(args: argparse.Namespace) -> int:
    """Write the checkpoint as an ONNX file; the exit code."""
    from ..onnx import ExportError, export

    try:
        shape = tuple(int(part) for part in args.input_shape.split(","))
    except ValueError:
        raise CLIError(
            f"--input-shape must be C,H,W (e.g. 1,28,28); got {args.input_shape!r}"
        ) from None
    try:
        ckpt = load_checkpoint(args.checkpoint, backend="numpy", input_shape=shape)
        path = export(ckpt.model, args.output, input_shape=shape, opset=args.opset)
    except (FileNotFoundError, ExportError, ValueError, OSError) as exc:
        raise CLIError(f"export: {exc}") from None
    print(f"wrote {path} (opset {args.opset}, input images N x {' x '.join(map(str, shape))})")
    return 0
