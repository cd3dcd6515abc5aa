"""Training on any backend: data moved to the device once, batches taken there.

``fit`` draws a seeded permutation per epoch, takes each batch on the model's device
(``xp.take``), and keeps each step's logits there; only every ``sync_every`` steps (a
progress update) and at the end of each epoch are the loss values and hits computed from
them and read back. A step itself computes only the loss's gradient (for a loss with
``gradient``/``per_sample``, as :class:`~xpnet.nn.CrossEntropyLoss`, from one-hot rows
built once for the dataset): no device work, and no host sync, for metrics in a step. It
stops with :class:`TrainingDiverged` naming the step when the loss turns NaN/inf (the last
good checkpoint stays as it was), and on Ctrl-C finishes the current step, saves a
checkpoint and raises ``KeyboardInterrupt``; ``fit(..., resume=True)`` continues that same
run.

The pieces, in the order a run uses them: :class:`_Run` holds what one ``fit`` call
trains and writes; :meth:`_Run.epoch` runs the steps of one epoch (:meth:`_Run.step`
each) and returns their :class:`_Totals`; :meth:`_Run.save` writes the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._backend import index_dtype, take_nonnegative, to_numpy
from ._run_control import deferred_interrupt, progress_bar
from ._typing import Array
from .checkpoint import load_checkpoint, save_checkpoint
from .compiled import CompiledStep, check_compilable
from .functional.softmax import one_hot_rows
from .inference import (  # evaluate, probabilities, predict: re-exported, xpnet.train's before
    check_dataset,
    evaluate,
    model_place,
    n_classes_of,
    predict,
    probabilities,
    to_model_device,
)
from .nn import CrossEntropyLoss, Module


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch metrics of a :func:`fit` run.

    Parameters
    ----------
    loss, accuracy : list of float
        Training loss and accuracy: means over each epoch's batches.
    val_loss, val_accuracy : list of float
        Measured on the validation set after each epoch (empty without one).
    seconds : list of float
        Each epoch's training time.
    lr : list of float
        The learning rate at each epoch's end.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[float]]:
        """The figures as plain lists (what ``metrics.json`` holds).

        Returns
        -------
        dict of str to list of float
            One entry per field.
        """
        return asdict(self)


@dataclass
class _Totals:
    """Loss and accuracy sums of the epoch's steps read back so far, and its time.

    ``seen`` counts every step's images; the sums include the steps up to the last
    read-back (:meth:`_Run.read_back`), which runs before anyone looks at them."""

    loss_sum: float
    correct: int
    seen: int
    seconds: float

    @classmethod
    def start(cls, partial: dict[str, Any]) -> _Totals:
        """Zero, or the sums a checkpoint saved mid-epoch (``partial``)."""
        return cls(
            float(partial.get("loss_sum", 0.0)),
            int(partial.get("correct", 0)),
            int(partial.get("seen", 0)),
            float(partial.get("seconds", 0.0)),
        )

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly."""
        return {
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen": self.seen,
            "seconds": self.seconds,
        }


@dataclass
class _Pending:
    """A step's results still on the device, until the next read-back."""

    global_step: int
    loss: Array | None  # None: computed at the read-back from the logits
    logits: Array
    labels: Array
    global_batch: int  # images in the step's (global) batch; labels holds this rank's


class _Run:
    """What one :func:`fit` call trains, where its data lives and what it writes."""

    def __init__(
        self,
        model: Module,
        loss: CrossEntropyLoss,
        optimizer: Any,
        scheduler: Any,
        train: tuple[Any, Any],
        settings: dict[str, Any],
    ) -> None:
        self.model, self.loss, self.optimizer, self.scheduler = model, loss, optimizer, scheduler
        self.settings = settings
        _, self.device, self.xp = model_place(model)
        self.x, y = to_model_device(model, *train)
        self.y = self.xp.astype(y, index_dtype(self.xp))
        self.n = int(self.x.shape[0])
        self.steps_per_epoch = math.ceil(self.n / settings["batch_size"])
        self.history = History()
        self.window: list[_Pending] = []  # steps not yet read back
        self.start_epoch, self.start_step = 0, 0
        self.partial: dict[str, Any] = {}
        self.lazy_loss = hasattr(loss, "gradient") and hasattr(loss, "per_sample")
        # one-hot rows of every label, built once: a step gathers its batch's with the
        # images (no comparison and cast a step); only where they take little memory
        n_classes = n_classes_of(model)
        self.targets = self.y
        if self.lazy_loss and n_classes is not None and self.n * n_classes <= 2**24:
            dtype = model.parameters()[-1].data.dtype  # the logits' (the last layer's)
            self.targets = one_hot_rows(self.y, n_classes, dtype, xp=self.xp)
        self.parallel: Any = None
        comm = settings.get("distributed")
        if comm is not None:
            from .distributed.data_parallel import DataParallel

            self.parallel = DataParallel(comm, settings["batch_size"])
        self.compiled = CompiledStep(model, loss, optimizer) if settings.get("compile") else None

    @property
    def root(self) -> bool:
        """Whether this process prints and writes (rank 0, or the only one)."""
        return self.parallel is None or self.parallel.root

    @property
    def checkpoint(self) -> Path | None:
        path = self.settings["checkpoint"]
        return None if path is None else Path(path)

    def resume(self, log: Callable[[str], None] | None) -> None:
        """Continue from the checkpoint: weights, optimizer, history, epoch and step."""
        path = self.checkpoint
        if path is None or not path.exists():
            return
        saved = load_checkpoint(path)
        self.model.load_state_dict(saved.model.state_dict())
        saved.restore_optimizer(self.optimizer, self.scheduler)
        self.history = History(**saved.state["history"])
        self.start_epoch, self.start_step = saved.state["epoch"], saved.state["step"]
        self.partial = saved.state.get("partial", {})
        if log:
            log(f"resumed from {path} at epoch {self.start_epoch + 1}, step {self.start_step}")

    def save(self, epoch: int, step: int, partial: dict[str, float]) -> None:
        """Write the checkpoint (if the run has a path): at ``step`` of ``epoch``. In a
        data-parallel run rank 0 writes and the others wait for it at a barrier."""
        if self.checkpoint is None:
            return
        if not self.root:
            self.parallel.comm.barrier()
            return
        keys = ("seed", "epochs", "batch_size")
        state = {
            "epoch": epoch,
            "step": step,
            **{key: self.settings[key] for key in keys},
            "history": self.history.to_dict(),
            "partial": partial,
            **self.settings["checkpoint_meta"],
        }
        save_checkpoint(
            self.checkpoint,
            self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=state,
            input_shape=tuple(int(size) for size in self.x.shape[1:]),
        )
        if self.parallel is not None:
            self.parallel.comm.barrier()

    def step(self, index: Array, totals: _Totals, global_step: int) -> None:
        """One training step on the batch ``x[index]``; its loss and logits are kept on
        the device until the next read-back (:meth:`read_back`) adds them to ``totals``
        and checks the loss for NaN/inf: no device operation or host sync for metrics
        inside a step."""
        xp, parallel = self.xp, self.parallel
        n_global = int(index.shape[0])
        if parallel is not None:
            if n_global < parallel.comm.size:  # a last batch too small to split: skipped
                return
            index, _ = parallel.local(index)
        xb = take_nonnegative(xp, self.x, index, axis=0)  # a permutation's slice: >= 0
        yb = take_nonnegative(xp, self.targets, index, axis=0)  # labels or one-hot rows
        if self.settings["augment"] is not None:
            xb = self.settings["augment"](xb)
        if self.compiled is not None:
            logits, batch_loss = self.compiled(xb, yb)
        else:
            logits, batch_loss = self._eager_step(xb, yb, n_global)
        if self.scheduler is not None:
            self.scheduler.step()
        totals.seen += n_global
        self.window.append(_Pending(global_step, batch_loss, logits, yb, n_global))

    def _eager_step(self, xb: Array, yb: Array, n_global: int) -> tuple[Array, Array | None]:
        """Forward, backward and update, one operation after another; the logits and the
        batch loss (``None`` for a lazy loss: computed at the read-back)."""
        parallel = self.parallel
        logits = self.model(xb)
        if self.lazy_loss:  # the gradient only; the value later, from the logits
            batch_loss, grad = None, self.loss.gradient(logits, yb)
        else:
            batch_loss = self.loss(logits, yb)
            grad = self.loss.backward()
        if parallel is None:
            self.model.backward(grad, input_grad=False)  # the input is data
            self.optimizer.step()
        else:
            scale = parallel.loss_scale(int(yb.shape[0]), n_global)
            self.model.backward(grad if scale == 1.0 else grad * scale, input_grad=False)
            self.optimizer.step(flat_grad=parallel.reduce_gradients(self.optimizer))
            parallel.broadcast_running_statistics(self.model)  # rank 0's, on every rank
        return logits, batch_loss

    def epoch(self, epoch: int, interrupted: Callable[[], bool]) -> tuple[_Totals, int | None]:
        """Run the steps of ``epoch``; return the totals and, if Ctrl-C stopped it, the
        number of steps done (else ``None``)."""
        batch, per_epoch, xp = self.settings["batch_size"], self.steps_per_epoch, self.xp
        first = self.start_step if epoch == self.start_epoch else 0
        order = np.random.default_rng([self.settings["seed"], epoch]).permutation(self.n)
        order = xp.asarray(order, device=self.device)
        totals = _Totals.start(self.partial)
        self.partial = {}
        started = time.perf_counter()
        epochs = self.settings["epochs"]
        bar = progress_bar(
            per_epoch, first, f"epoch {epoch + 1}/{epochs}", self.settings["progress"]
        )
        stopped_at = None
        sync_every, on_step = self.settings["sync_every"], self.settings["on_step"]
        for step in range(first, per_epoch):
            global_step = epoch * per_epoch + step + 1
            # in-bounds stop: the standard leaves others unspecified
            self.step(order[step * batch : min((step + 1) * batch, self.n)], totals, global_step)
            if on_step is not None:
                on_step(global_step)
            if self._stop_now(interrupted, step):
                stopped_at = step + 1
                break
            if (step + 1) % sync_every == 0:
                self.read_back(epoch, totals)
                if bar is not None:
                    bar.update(sync_every)
                    loss, acc = totals.loss_sum / totals.seen, totals.correct / totals.seen
                    bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}")
        self.read_back(epoch, totals)
        if bar is not None:
            bar.close()
        totals.seconds += time.perf_counter() - started
        return totals, stopped_at

    def _stop_now(self, interrupted: Callable[[], bool], step: int) -> bool:
        """Ctrl-C: at once in one process; in a data-parallel run at the next read-back,
        on every rank together (one collective every ``sync_every`` steps)."""
        if self.parallel is None:
            return interrupted()
        if (step + 1) % self.settings["sync_every"]:
            return False
        return not self.parallel.comm.all_agree(not interrupted())

    def read_back(self, epoch: int, totals: _Totals) -> None:
        """Read the pending steps' losses and hits back (two transfers); raise on the
        first NaN/inf loss, else add them to ``totals``."""
        if not self.window:
            return
        xp = self.xp
        logits = xp.concat([pending.logits for pending in self.window], axis=0)
        labels = xp.concat([pending.labels for pending in self.window], axis=0)
        classes = labels if labels.ndim == 1 else xp.argmax(labels, axis=1)  # one-hot rows
        correct = int(xp.count_nonzero(xp.argmax(logits, axis=1) == classes))
        # each step's loss summed over its images, and the hits (over the ranks: one sum)
        sizes = [int(pending.labels.shape[0]) for pending in self.window]
        if self.lazy_loss:  # every image's loss in one pass and one transfer
            each = to_numpy(self.loss.per_sample(logits, labels)).astype(np.float64)
            ends = np.cumsum(sizes)
            sums = [float(np.sum(each[end - size : end])) for end, size in zip(ends, sizes)]
        else:
            losses = to_numpy(xp.stack([pending.loss for pending in self.window]))
            sums = [float(loss) * size for loss, size in zip(losses, sizes)]
        if self.parallel is not None:
            *sums, correct = self.parallel.comm.sum_host(np.array([*sums, correct]))
        values = [total / pending.global_batch for total, pending in zip(sums, self.window)]
        for pending, value in zip(self.window, values):
            global_step = pending.global_step
            if not np.isfinite(value):
                step = global_step - epoch * self.steps_per_epoch
                path = self.checkpoint
                if path is None:
                    kept = ""
                elif path.exists():
                    kept = f"; last good checkpoint: {path}"
                else:
                    kept = "; no checkpoint was written"
                raise TrainingDiverged(
                    f"training stopped: loss is {value} at epoch {epoch + 1}, step {step} "
                    f"(global step {global_step}){kept}"
                )
        for total in sums:  # in step order, in float64
            totals.loss_sum += float(total)
        totals.correct += int(correct)
        self.window.clear()

    def finish_epoch(self, totals: _Totals, val: tuple[Any, Any] | None) -> None:
        """Record the epoch's metrics (and validation metrics) in the history."""
        self.history.seconds.append(totals.seconds)
        self.history.loss.append(float(totals.loss_sum) / totals.seen)
        self.history.accuracy.append(int(totals.correct) / totals.seen)
        self.history.lr.append(self.optimizer.lr)
        if val is not None:
            metrics = evaluate(self.model, *val)
            self.history.val_loss.append(metrics["loss"])
            self.history.val_accuracy.append(metrics["accuracy"])


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
    augment: Callable[[Array], Array] | None = None,
    distributed: Any = None,
    compile: bool = False,
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
    augment : callable, optional
        Applied to each training batch on the device, e.g.
        :class:`xpnet.augment.RandomShift`; validation data is left as it is.
    distributed : xpnet.distributed.Communicator, optional
        Train data-parallel over its ranks (:mod:`xpnet.distributed`): ``batch_size`` is
        the global batch, split evenly; rank 0's weights are broadcast first; gradients
        are averaged with one allreduce a step; only rank 0 logs and writes the
        checkpoint. Every rank returns the same history.
    compile : bool
        Compile the whole step (forward, loss, backward, update) into one program, traced
        once per batch shape (:mod:`xpnet.compiled`): ``jax.jit`` on the ``jax`` backend;
        elsewhere :class:`~xpnet.compiled.CompileUnsupported` is raised. The results equal
        the eager step's to float32 rounding.

    Returns
    -------
    History
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("sync_every", sync_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"fit: {name} must be an int >= 1; got {value!r}")
    if resume and checkpoint is None:
        raise ValueError("fit: resume=True needs a checkpoint path")
    if compile:
        check_compilable(model, distributed=distributed)
    n_classes = n_classes_of(model)
    check_dataset(*train, "train", n_classes)
    if val is not None:
        check_dataset(*val, "val", n_classes)
    loss.check_range = False  # validated once above, no device read per step
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "checkpoint": checkpoint,
        "sync_every": sync_every,
        "progress": progress,
        "on_step": on_step,
        "checkpoint_meta": checkpoint_meta or {},
        "augment": augment,
        "distributed": distributed,
        "compile": compile,
    }
    run = _Run(model, loss, optimizer, scheduler, train, settings)
    if not run.root:
        log, settings["progress"] = None, False
    if resume:
        run.resume(log)
    if run.parallel is not None:  # every rank starts from rank 0's weights
        run.parallel.broadcast_model(model)
    model.train()
    with deferred_interrupt() as interrupted:
        for epoch in range(run.start_epoch, epochs):
            totals, stopped_at = run.epoch(epoch, interrupted)
            if stopped_at is not None:
                run.save(epoch, stopped_at, totals.to_dict())
                if log:
                    where = f" to {checkpoint}" if checkpoint else " (no checkpoint path given)"
                    log(f"interrupted at epoch {epoch + 1}, step {stopped_at}: saved{where}")
                raise KeyboardInterrupt
            run.finish_epoch(totals, val)
            run.save(epoch + 1, 0, {})
            if log:
                log(_summary(run.history, epoch, epochs))
    return run.history


def _summary(history: History, epoch: int, epochs: int) -> str:
    line = (
        f"epoch {epoch + 1}/{epochs}  loss {history.loss[-1]:.4f}  acc {history.accuracy[-1]:.4f}"
    )
    if history.val_accuracy:
        line += f"  val_loss {history.val_loss[-1]:.4f}  val_acc {history.val_accuracy[-1]:.4f}"
    return line + f"  lr {history.lr[-1]:.2e}  {history.seconds[-1]:.1f}s"


__all__ = [
    "History",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "predict",
    "probabilities",
    "to_model_device",
]
