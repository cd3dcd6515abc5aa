"""Training on any backend: data moved to the device once, batches taken there.

``fit`` draws a seeded permutation per epoch, takes each batch on the model's device
(``xp.take``), accumulates loss and accuracy on the device and reads them back only every
``sync_every`` steps (a progress update) and at the end of each epoch. It stops with
:class:`TrainingDiverged` naming the step when the loss turns NaN/inf (the last good
checkpoint stays as it was), and on Ctrl-C finishes the current step, saves a checkpoint
and raises ``KeyboardInterrupt``; ``fit(..., resume=True)`` continues that same run.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from ._backend import backend_of, to_numpy
from .checkpoint import load_checkpoint, save_checkpoint
from .functional import softmax
from .nn import CrossEntropyLoss, Module

Array = Any


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[float]]:
        return asdict(self)


def _model_place(model: Module) -> tuple[str, Any, Any]:
    params = model.parameters()
    if not params:
        raise ValueError("fit: the model has no parameters")
    data = params[0].data
    return backend_of(data), device(data), array_namespace(data)


def to_model_device(model: Module, *arrays: Any) -> list[Any]:
    """Copy ``arrays`` (NumPy or any backend) once to the backend and device of ``model``."""
    from ._backend import asarray

    name, dev, _ = _model_place(model)
    return [asarray(a, backend=name, device=dev) for a in arrays]


def _check_dataset(x: Any, y: Any, name: str, n_classes: int | None = None) -> None:
    if len(x) != len(y):
        raise ValueError(f"{name}: images ({len(x)}) and labels ({len(y)}) differ in count")
    if len(x) == 0:
        raise ValueError(f"{name}: the dataset is empty")
    labels = to_numpy(y)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name}: labels must be integers; got dtype {labels.dtype}")
    if n_classes is not None and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"{name}: labels must lie in [0, {n_classes}); got [{labels.min()}, {labels.max()}]"
        )


def _n_classes(model: Module) -> int | None:
    last = model.parameters()[-1].data
    return int(last.shape[0]) if last.ndim == 1 else None


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a flag checked between steps (a second one interrupts now)."""
    requested = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if requested[0]:
            raise KeyboardInterrupt
        requested[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    # disable=None: quiet when stdout is not a terminal.
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        leave=False,
        disable=None if enabled else True,
        file=sys.stdout,
        dynamic_ncols=True,
    )


def fit(
    model: Module,
    loss: CrossEntropyLoss,
    optimizer: Any,
    train: tuple[Any, Any],
    *,
    epochs: int,
    batch_size: int = 128,
    val: tuple[Any, Any] | None = None,
    seed: int = 0,
    scheduler: Any = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    sync_every: int = 20,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    on_step: Callable[[int], None] | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` on ``train = (images, labels)`` for ``epochs`` epochs.

    Parameters
    ----------
    model, loss, optimizer
        An xpnet model, a loss taking (logits, labels), an optimizer over the model's
        parameters.
    train, val : (images, labels)
        NumPy or backend arrays; copied to the model's device once.
    epochs, batch_size : int
    seed : int
        Seeds the per-epoch permutation: the same seed gives the same run.
    scheduler : LRScheduler, optional
        Stepped after every optimizer step.
    checkpoint : path, optional
        Written atomically after every epoch and on Ctrl-C.
    resume : bool
        Continue from ``checkpoint`` if it exists (same run: epoch, step, optimizer state).
    sync_every : int
        Read metrics back from the device every this many steps (and at each epoch end).
    progress : bool
        Show a tqdm bar (quiet anyway when stdout is not a terminal).
    log : callable, optional
        Receives one summary line per epoch; ``None`` for silence.
    on_step : callable, optional
        Called with the global step number after each step.
    checkpoint_meta : dict, optional
        JSON-friendly facts stored in every checkpoint's state (e.g. the normalisation).

    Returns
    -------
    History
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1; got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be an int >= 1; got {batch_size!r}")
    if sync_every < 1:
        raise ValueError(f"fit: sync_every must be >= 1; got {sync_every}")
    if resume and checkpoint is None:
        raise ValueError("fit: resume=True needs a checkpoint path")
    n_classes = _n_classes(model)
    _check_dataset(*train, "train", n_classes)
    if val is not None:
        _check_dataset(*val, "val", n_classes)
    _, dev, xp = _model_place(model)
    x, y = to_model_device(model, *train)
    y = xp.astype(y, xp.int64)
    loss.check_range = False  # validated once above, no device read per step
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    history, start_epoch, start_step, partial = History(), 0, 0, {}
    if resume and Path(checkpoint).exists():
        saved = load_checkpoint(checkpoint)
        model.load_state_dict(saved.model.state_dict())
        saved.restore_optimizer(optimizer, scheduler)
        history = History(**saved.state["history"])
        start_epoch, start_step = saved.state["epoch"], saved.state["step"]
        partial = saved.state.get("partial", {})
        if log:
            log(f"resumed from {checkpoint} at epoch {start_epoch + 1}, step {start_step}")

    def save(epoch: int, step: int, partial_sums: dict[str, float]) -> None:
        if checkpoint is not None:
            state = {
                "epoch": epoch,
                "step": step,
                "seed": seed,
                "epochs": epochs,
                "batch_size": batch_size,
                "history": history.to_dict(),
                "partial": partial_sums,
                **(checkpoint_meta or {}),
            }
            save_checkpoint(
                checkpoint, model, optimizer=optimizer, scheduler=scheduler, state=state
            )

    # The input is data: stop the backward at the first layer with parameters, if it can.
    model.train()
    with _deferred_interrupt() as interrupted:
        for epoch in range(start_epoch, epochs):
            first = start_step if epoch == start_epoch else 0
            order = np.random.default_rng([seed, epoch]).permutation(n)
            order = xp.asarray(order, device=dev)
            loss_sum = xp.asarray(partial.get("loss_sum", 0.0), dtype=xp.float64, device=dev)
            correct = xp.asarray(partial.get("correct", 0), dtype=xp.int64, device=dev)
            seen = int(partial.get("seen", 0))
            seconds = float(partial.get("seconds", 0.0))
            partial = {}
            window: list[tuple[int, Array]] = []
            started = time.perf_counter()
            bar = _progress(steps_per_epoch, first, f"epoch {epoch + 1}/{epochs}", progress)

            for step in range(first, steps_per_epoch):
                index = order[
                    step * batch_size : min((step + 1) * batch_size, n)
                ]  # in-bounds stop: the standard leaves others unspecified
                xb, yb = xp.take(x, index, axis=0), xp.take(y, index, axis=0)
                logits = model(xb)
                batch_loss = loss(logits, yb)
                model.backward(loss.backward(), input_grad=False)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                global_step = epoch * steps_per_epoch + step + 1
                window.append((global_step, batch_loss))
                size = xb.shape[0]
                loss_sum = loss_sum + xp.astype(batch_loss, xp.float64) * size
                hits = xp.argmax(logits, axis=1) == yb
                correct = correct + xp.sum(xp.astype(hits, xp.int64))
                seen += size
                if on_step is not None:
                    on_step(global_step)
                if (step + 1) % sync_every == 0 or interrupted():
                    _check_losses(xp, window, epoch, steps_per_epoch, checkpoint)
                    if bar is not None:
                        bar.update(sync_every if not interrupted() else 0)
                        bar.set_postfix(
                            loss=f"{float(loss_sum) / seen:.4f}", acc=f"{int(correct) / seen:.4f}"
                        )
                if interrupted():
                    _check_losses(xp, window, epoch, steps_per_epoch, checkpoint)
                    seconds += time.perf_counter() - started
                    sums = {
                        "loss_sum": float(loss_sum),
                        "correct": int(correct),
                        "seen": seen,
                        "seconds": seconds,
                    }
                    save(epoch, step + 1, sums)
                    if bar is not None:
                        bar.close()
                    if log:
                        where = f" to {checkpoint}" if checkpoint else " (no checkpoint path given)"
                        log(f"interrupted at epoch {epoch + 1}, step {step + 1}: saved{where}")
                    raise KeyboardInterrupt
            _check_losses(xp, window, epoch, steps_per_epoch, checkpoint)
            if bar is not None:
                bar.close()
            history.seconds.append(seconds + time.perf_counter() - started)
            history.loss.append(float(loss_sum) / seen)
            history.accuracy.append(int(correct) / seen)
            history.lr.append(optimizer.lr)
            if val is not None:
                metrics = evaluate(model, *val)
                history.val_loss.append(metrics["loss"])
                history.val_accuracy.append(metrics["accuracy"])
            save(epoch + 1, 0, {})
            if log:
                log(_summary(history, epoch, epochs))
    return history


def _check_losses(
    xp: Any, window: list[tuple[int, Array]], epoch: int, steps_per_epoch: int, checkpoint: Any
) -> None:
    """Read the window's losses back in one transfer; raise on the first NaN/inf, else clear."""
    if not window:
        return
    values = to_numpy(xp.stack([loss for _, loss in window]))
    for (global_step, _), value in zip(window, values):
        if not np.isfinite(value):
            where = f"epoch {epoch + 1}, step {global_step - epoch * steps_per_epoch}"
            kept = f"; last good checkpoint: {checkpoint}" if checkpoint else ""
            raise TrainingDiverged(
                f"training stopped: loss is {value} at {where} (global step {global_step}){kept}"
            )
    window.clear()


def _summary(history: History, epoch: int, epochs: int) -> str:
    line = (
        f"epoch {epoch + 1}/{epochs}  loss {history.loss[-1]:.4f}  acc {history.accuracy[-1]:.4f}"
    )
    if history.val_accuracy:
        line += f"  val_loss {history.val_loss[-1]:.4f}  val_acc {history.val_accuracy[-1]:.4f}"
    return line + f"  lr {history.lr[-1]:.2e}  {history.seconds[-1]:.1f}s"


def _batched_logits(model: Module, x: Any, batch_size: int) -> Iterator[tuple[int, Array]]:
    (x,) = to_model_device(model, x)
    was_training = model.training
    model.eval()
    try:
        n = x.shape[0]
        for start in range(0, n, batch_size):
            yield start, model(x[start : min(start + batch_size, n), ...])
    finally:
        model.train(was_training)


def evaluate(model: Module, x: Any, y: Any, *, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` (eval mode, batched).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``.
    """
    _check_dataset(x, y, "evaluate", _n_classes(model))
    _, _, xp = _model_place(model)
    (labels,) = to_model_device(model, y)
    labels = xp.astype(labels, xp.int64)
    crit = CrossEntropyLoss(check_range=False)
    loss_sum, correct = 0.0, 0
    for start, logits in _batched_logits(model, x, batch_size):
        yb = labels[start : start + logits.shape[0]]
        loss_sum = loss_sum + crit(logits, yb) * logits.shape[0]
        correct = correct + xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, xp.int64))
    n = len(y)
    return {"loss": float(loss_sum) / n, "accuracy": int(correct) / n}


def predict(model: Module, x: Any, *, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, n_classes) of ``model`` on images ``x``, as NumPy float64."""
    parts = [
        to_numpy(softmax(logits, axis=1)) for _, logits in _batched_logits(model, x, batch_size)
    ]
    return np.concatenate(parts).astype(np.float64)
