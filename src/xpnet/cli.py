"""The ``xpnet`` command: train, evaluate, predict, info."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, models, optim
from ._backend import BACKENDS, available_backends, check_backend_name, device_info
from .checkpoint import load_checkpoint
from .datasets import MNIST_MEAN, MNIST_STD, load_mnist
from .nn import CrossEntropyLoss
from .train import TrainingDiverged, evaluate, fit, predict

DEFAULT_LR = {"adam": 5e-3, "sgd": 0.05}
MODEL_LR_SCALE = {"seed_cnn": 2.0}  # the shallow sigmoid net likes a larger step (README table)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _backend(name: str) -> str:
    """``name`` if that backend is usable here, else a one-line :class:`CLIError`."""
    try:
        return check_backend_name(name)
    except (ValueError, RuntimeError) as exc:
        raise CLIError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpnet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    tr = commands.add_parser("train", help="train a CNN on MNIST")
    tr.add_argument("--backend", choices=BACKENDS, default="numpy")
    tr.add_argument("--model", choices=list(models.MODELS), default="mnist_cnn")
    tr.add_argument("--epochs", type=int, default=2)
    tr.add_argument("--batch-size", type=int, default=128)
    tr.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    tr.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default: adam 5e-3, sgd 0.05; twice that for seed_cnn)",
    )
    tr.add_argument(
        "--schedule", choices=["onecycle", "cosine", "step", "none"], default="onecycle"
    )
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--data-dir", type=Path, help="folder of the four MNIST IDX .gz files")
    tr.add_argument("--out", type=Path, default=Path("runs/mnist"), help="output folder")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--limit", type=int, help="use only the first N training and test images")
    tr.add_argument("--no-progress", action="store_true")

    ev = commands.add_parser("evaluate", help="test accuracy of a checkpoint")
    ev.add_argument("checkpoint", type=Path)
    ev.add_argument("--backend", choices=BACKENDS, default="numpy")
    ev.add_argument("--data-dir", type=Path)
    ev.add_argument("--limit", type=int, help="use only the first N test images")

    pr = commands.add_parser("predict", help="classify digit images (PNG, JPEG, ...)")
    pr.add_argument("checkpoint", type=Path)
    pr.add_argument("images", type=Path, nargs="+")
    pr.add_argument("--backend", choices=BACKENDS, default="numpy")

    commands.add_parser("info", help="backends, devices and versions")
    return parser


def _limit(
    arrays: tuple[np.ndarray, np.ndarray], limit: int | None
) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return arrays
    if limit < 1:
        raise CLIError(f"--limit must be >= 1; got {limit}")
    return arrays[0][:limit], arrays[1][:limit]


def _load_data(data_dir: Path | None, limit: int | None) -> tuple[Any, Any]:
    try:
        train, test = load_mnist(data_dir, normalize=True)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    return _limit(train, limit), _limit(test, limit)


def _peak_lr(args: argparse.Namespace) -> float:
    if args.lr is not None:
        return args.lr
    return DEFAULT_LR[args.optimizer] * MODEL_LR_SCALE.get(args.model, 1.0)


def _make_optimizer(args: argparse.Namespace, params: list, steps: int) -> tuple[Any, Any]:
    lr = _peak_lr(args)
    opt: optim.Optimizer
    if args.optimizer == "adam":
        opt = optim.Adam(params, lr=lr)
    else:
        opt = optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if args.schedule == "onecycle":
        return opt, optim.OneCycleLR(opt, lr, max(steps, 2))
    if args.schedule == "cosine":
        return opt, optim.CosineAnnealingLR(opt, steps)
    if args.schedule == "step":
        return opt, optim.StepLR(opt, max(steps // max(args.epochs, 1), 1), gamma=0.5)
    return opt, None


def cmd_train(args: argparse.Namespace) -> int:
    backend = _backend(args.backend)
    if args.epochs < 1 or args.batch_size < 1:
        raise CLIError(
            f"--epochs and --batch-size must be >= 1; got {args.epochs}, {args.batch_size}"
        )
    train_set, test_set = _load_data(args.data_dir, args.limit)
    model = models.build(args.model, seed=args.seed, backend=backend)
    steps = args.epochs * -(-len(train_set[0]) // args.batch_size)
    opt, scheduler = _make_optimizer(args, model.parameters(), steps)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "model.npz"
    if ckpt.exists() and not args.resume:
        raise CLIError(f"{ckpt} exists: pass --resume to continue that run, or another --out")
    peak_lr = _peak_lr(args)
    print(
        f"training {args.model} on {backend} ({len(train_set[0])} images, {args.epochs} epochs, "
        f"batch {args.batch_size}, {args.optimizer} peak lr {peak_lr:.1e}, {args.schedule})"
    )
    started = time.perf_counter()
    try:
        history = fit(
            model,
            CrossEntropyLoss(),
            opt,
            train_set,
            epochs=args.epochs,
            batch_size=args.batch_size,
            val=test_set,
            seed=args.seed,
            scheduler=scheduler,
            checkpoint=ckpt,
            resume=args.resume,
            progress=not args.no_progress,
            checkpoint_meta={"normalize": [MNIST_MEAN, MNIST_STD], "model_name": args.model},
        )
    except KeyboardInterrupt:
        print(f"interrupted: resume with: xpnet train --out {out} --resume (and the same options)")
        return 130
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    metrics = evaluate(model, *test_set)
    probs = predict(model, test_set[0])
    write_report(out, args, backend, history, metrics, probs, test_set[1], elapsed)
    print(f"test_accuracy: {metrics['accuracy']:.4f}")
    return 0


def write_report(
    out: Path,
    args: argparse.Namespace,
    backend: str,
    history: Any,
    metrics: dict[str, float],
    probs: np.ndarray,
    labels: np.ndarray,
    elapsed: float,
) -> None:
    """metrics.json, curves.png and confusion.png in ``out``."""
    from .plots import confusion_matrix

    matrix = confusion_matrix(labels, probs.argmax(axis=1))
    report = {
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "epochs": args.epochs,
        "backend": backend,
        "model": args.model,
        "optimizer": args.optimizer,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "train_images": int(len(labels) if args.limit else 60000),
        "seconds": elapsed,
        "history": history.to_dict(),
        "confusion_matrix": matrix.tolist(),
        "versions": {
            "xpnet": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    try:
        from .plots import plot_confusion, plot_curves

        plot_curves(history, out / "curves.png")
        plot_confusion(matrix, out / "confusion.png", f"{args.model} on {backend}")
        print(f"wrote {out / 'model.npz'}, metrics.json, curves.png, confusion.png")
    except ImportError:
        print(
            f"wrote {out / 'model.npz'} and metrics.json; matplotlib not installed: plots "
            "skipped (pip install 'xpnet[plot]')"
        )


def _open_checkpoint(path: Path, backend: str) -> Any:
    try:
        return load_checkpoint(path, backend=backend)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    backend = _backend(args.backend)
    ckpt = _open_checkpoint(args.checkpoint, backend)
    _, test_set = _load_data(args.data_dir, args.limit)
    metrics = evaluate(ckpt.model, *test_set)
    print(
        f"{args.checkpoint} on {backend}: {len(test_set[1])} test images, loss {metrics['loss']:.4f}"
    )
    print(f"test_accuracy: {metrics['accuracy']:.4f}")
    return 0


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


def cmd_predict(args: argparse.Namespace) -> int:
    backend = _backend(args.backend)
    ckpt = _open_checkpoint(args.checkpoint, backend)
    normalize = tuple(ckpt.state.get("normalize", [MNIST_MEAN, MNIST_STD]))
    images = np.stack([load_image(p, normalize) for p in args.images])
    probs = predict(ckpt.model, images)
    for path, row in zip(args.images, probs):
        print(f"{path}: {int(row.argmax())} (p={row.max():.4f})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(f"xpnet {__version__}, Python {platform.python_version()} on {platform.machine()}")
    for name, text in device_info().items():
        print(f"  {name:<17} {text}")
    print(f"available: {', '.join(available_backends())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "predict": cmd_predict,
        "info": cmd_info,
    }
    try:
        return handler[args.command](args)
    except CLIError as exc:
        print(str(exc), file=sys.stderr)
        return 2
