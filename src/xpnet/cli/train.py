"""``xpnet train``: a model from :mod:`xpnet.models` on MNIST, its checkpoint and report."""

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

from .. import __version__, models, optim
from .._backend import BACKENDS
from ..augment import RandomShift
from ..compiled import COMPILERS
from ..datasets import MNIST_MEAN, MNIST_STD, train_val_split
from ..inference import evaluate, predict
from ..nn import CrossEntropyLoss
from ..train import TrainingDiverged, fit
from ._common import DEVICE_HELP, CLIError, OneLineHelp, load_data, placement

DEFAULT_VAL = 5000  # training images held out for validation
MODEL_LR_SCALE = {"seed_cnn": 2.0}  # the shallow sigmoid net likes a larger step


def add_parser(commands: Any) -> None:
    """The ``train`` subcommand and its options."""
    tr = commands.add_parser("train", help="train a CNN on MNIST", formatter_class=OneLineHelp)
    tr.add_argument("--backend", choices=BACKENDS, default="numpy", help="where to train")
    tr.add_argument("--device", help=DEVICE_HELP)
    tr.add_argument("--model", choices=list(models.MODELS), default="mnist_cnn", help="net")
    tr.add_argument("--epochs", type=int, default=2, help="passes over the training images")
    tr.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="images per step; with --distributed the global batch, split evenly over the ranks",
    )
    tr.add_argument("--optimizer", choices=list(optim.DEFAULT_LR), default="adam", help="optimizer")
    tr.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default: adam 5e-3, sgd 0.05; twice that for seed_cnn)",
    )
    tr.add_argument(
        "--schedule",
        choices=["onecycle", "cosine", "step", "none"],
        default="onecycle",
        help="learning-rate schedule",
    )
    tr.add_argument("--seed", type=int, default=0, help="seeds weights, split and batch order")
    tr.add_argument(
        "--augment",
        choices=["none", "shift"],
        default="none",
        help="training-batch augmentation on the device (shift: random shifts of up to 2 px)",
    )
    tr.add_argument(
        "--val",
        type=int,
        help="training images held out for per-epoch validation, 0 for none "
        f"(default: {DEFAULT_VAL}, or a tenth of --limit when that is fewer)",
    )
    tr.add_argument(
        "--data-dir", type=Path, help="folder of the four MNIST IDX .gz files (default: shipped)"
    )
    tr.add_argument("--out", type=Path, default=Path("runs/mnist"), help="output folder")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument(
        "--limit", type=int, help="use only the first N training and test images (default: all)"
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes of mpiexec -n K (pip install 'xpnet[mpi]')",
    )
    tr.add_argument(
        "--compile",
        action="store_true",
        help="compile the whole training step into one program (--backend jax: jax.jit)",
    )
    tr.add_argument(
        "--sync-bn",
        action="store_true",
        help="with --distributed: batch norm by the global batch's statistics",
    )


def _split_validation(
    train_set: tuple[np.ndarray, np.ndarray], val: int | None, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """Hold out ``val`` training images (stratified, seeded) for per-epoch validation."""
    n = len(train_set[1])
    n_classes = len(np.unique(train_set[1]))
    if val is None:  # the default: 5,000, or a tenth of a small --limit, or none if too few
        val = min(DEFAULT_VAL, n // 10)
        val = val if val >= n_classes else 0
    if val == 0:
        return train_set, None
    if not n_classes <= val <= n - n_classes:
        raise CLIError(
            f"--val must be 0 or between {n_classes} and {n - n_classes} "
            f"(one image per class each side) for {n} training images; got {val}"
        )
    train, held_out = train_val_split(*train_set, val_fraction=val / n, seed=seed)
    return train, held_out


def _peak_lr(args: argparse.Namespace) -> float:
    if args.lr is not None:
        return args.lr
    return optim.DEFAULT_LR[args.optimizer] * MODEL_LR_SCALE.get(args.model, 1.0)


def _make_optimizer(args: argparse.Namespace, params: list, steps: int) -> tuple[Any, Any]:
    lr = _peak_lr(args)
    opt = optim.make_optimizer(args.optimizer, params, lr)
    if args.schedule == "onecycle":
        return opt, optim.OneCycleLR(opt, lr, max(steps, 2))
    if args.schedule == "cosine":
        return opt, optim.CosineAnnealingLR(opt, steps)
    if args.schedule == "step":
        return opt, optim.StepLR(opt, max(steps // max(args.epochs, 1), 1), gamma=0.5)
    return opt, None


def _communicator(args: argparse.Namespace, backend: str) -> Any:
    """The data-parallel communicator for ``--distributed`` (else ``None``), its batch
    checked; each rank's GPU chosen by its rank on the machine."""
    if args.sync_bn and not args.distributed:
        raise CLIError("--sync-bn needs --distributed")
    if not args.distributed:
        return None
    from ..distributed import DistributedError, init

    try:
        comm = init()
    except DistributedError as exc:
        raise CLIError(str(exc)) from None
    if args.batch_size % comm.size:
        raise CLIError(
            f"--batch-size {args.batch_size} does not split over {comm.size} ranks: with "
            f"--distributed it is the global batch; give a multiple of {comm.size}"
        )
    return comm


def run(args: argparse.Namespace) -> int:
    """Train, write the checkpoint and the report, print the test accuracy; the exit code."""
    backend, device = placement(args)
    if args.compile and backend not in COMPILERS:
        raise CLIError(
            f"--compile needs --backend {' or '.join(COMPILERS)} ({', '.join(COMPILERS.values())}); "
            f"{backend} runs one operation at a time"
        )
    if args.compile and args.distributed:
        raise CLIError("--compile does not run with --distributed yet: drop one")
    comm = _communicator(args, backend)
    out: Path = args.out
    ckpt = out / "model.npz"
    if ckpt.exists() and not args.resume:  # every rank sees it: all stop here
        raise CLIError(f"{ckpt} exists: pass --resume to continue that run, or another --out")
    if comm is not None:
        device = device or comm.gpu_device(backend)
        if comm.rank != 0:  # rank 0 prints and writes; the others train quietly
            return _train_quietly(args, backend, device, comm)
    train_set, test_set = load_data(args.data_dir, args.limit)
    train_set, val_set = _split_validation(train_set, args.val, args.seed)
    model, opt, scheduler = _build(args, backend, device, comm, len(train_set[0]))
    out.mkdir(parents=True, exist_ok=True)
    peak_lr = _peak_lr(args)
    print(
        f"training {args.model} on {backend} ({len(train_set[0])} images, "
        f"{0 if val_set is None else len(val_set[0])} held out for validation, {args.epochs} epoch{'s' if args.epochs != 1 else ''}, "
        f"batch {args.batch_size}, {args.optimizer} peak lr {peak_lr:.1e}, {args.schedule})"
        + ("" if comm is None else f" on {comm.size} ranks")
        + (", compiled" if args.compile else "")
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
            val=val_set,
            seed=args.seed,
            scheduler=scheduler,
            checkpoint=ckpt,
            resume=args.resume,
            progress=not args.no_progress,
            checkpoint_meta={"normalize": [MNIST_MEAN, MNIST_STD], "model_name": args.model},
            augment=RandomShift(2, seed=args.seed) if args.augment == "shift" else None,
            distributed=comm,
            compile=args.compile,
        )
    except KeyboardInterrupt:
        print(f"interrupted: resume with: xpnet train --out {out} --resume (and the same options)")
        return 130
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    metrics = evaluate(model, *test_set)  # the test set's only use: once, at the end
    probs = predict(model, test_set[0])
    sizes = {
        "train_images": len(train_set[0]),
        "val_images": 0 if val_set is None else len(val_set[0]),
    }
    write_report(out, args, backend, history, metrics, probs, test_set[1], elapsed, sizes)
    print(f"test_accuracy: {metrics['accuracy']:.4f}")
    return 0


def _build(
    args: argparse.Namespace, backend: str, device: Any, comm: Any, n_train: int
) -> tuple[Any, Any, Any]:
    """The model (SyncBatchNorm with --sync-bn), its optimizer and schedule."""
    model = models.build(args.model, seed=args.seed, backend=backend).to(backend, device=device)
    if args.sync_bn:
        from ..distributed import convert_sync_batchnorm

        model = convert_sync_batchnorm(model, comm)
    steps = args.epochs * -(-n_train // args.batch_size)
    opt, scheduler = _make_optimizer(args, model.parameters(), steps)
    return model, opt, scheduler


def _train_quietly(args: argparse.Namespace, backend: str, device: Any, comm: Any) -> int:
    """A rank other than 0: the same data, model and steps; no output, no files."""
    train_set, _ = load_data(args.data_dir, args.limit)
    train_set, val_set = _split_validation(train_set, args.val, args.seed)
    model, opt, scheduler = _build(args, backend, device, comm, len(train_set[0]))
    try:
        fit(model, CrossEntropyLoss(), opt, train_set, epochs=args.epochs,
            batch_size=args.batch_size, val=val_set, seed=args.seed, scheduler=scheduler,
            checkpoint=args.out / "model.npz", resume=args.resume, progress=False, log=None,
            augment=RandomShift(2, seed=args.seed + comm.rank) if args.augment == "shift" else None,
            distributed=comm)  # fmt: skip
    except KeyboardInterrupt:
        return 130
    except TrainingDiverged:
        return 1
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
    sizes: dict[str, int],
) -> None:
    """metrics.json, curves.png and confusion.png in ``out``."""
    from ..plots import confusion_matrix

    matrix = confusion_matrix(labels, probs.argmax(axis=1))
    report = {
        "test_accuracy": metrics["accuracy"],
        "test_loss": metrics["loss"],
        "epochs": args.epochs,
        "backend": backend,
        "model": args.model,
        "optimizer": args.optimizer,
        "augment": args.augment,
        "compiled": args.compile,
        "batch_size": args.batch_size,
        "seed": args.seed,
        **sizes,
        "test_images": len(labels),
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
        from ..plots import plot_confusion, plot_curves

        plot_curves(history, out / "curves.png")
        plot_confusion(matrix, out / "confusion.png", f"{args.model} on {backend}")
        print(f"wrote {out / 'model.npz'}, metrics.json, curves.png, confusion.png")
    except ImportError:
        print(
            f"wrote {out / 'model.npz'} and metrics.json; matplotlib not installed: plots "
            "skipped (pip install 'xpnet[plot]')"
        )
