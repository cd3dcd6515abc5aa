"""MNIST training: xpnet (each backend) against the same model in PyTorch, in one run.

    python benchmarks/mnist.py [--quick] [--repeats N] [--out DIR]
    python benchmarks/mnist.py --model mnist_resnet --epochs 12 --augment --repeats 1

Measures, interleaved over repeats (medians and spread):
- the training step at batch 128 (forward, backward, Adam step on one fixed batch), also
  for xpnet-numpy-generic (NumPy with its fast paths off: the "before" figure);
- one full training epoch (Adam + one-cycle, batch 128, data already on the device);
- once per implementation, the training time to reach 99% test accuracy with the default
  recipe (``--epochs``, default 2), test accuracy measured after each epoch and not timed.
``--model`` picks another of ``xpnet.models`` (written under ``mnist`` for the default,
``mnist-<model>`` otherwise); ``--augment`` adds random shifts of up to 2 px to every
training batch of every implementation (xpnet's ``RandomShift``, on torch tensors too).
PyTorch's model is built from xpnet's own architecture spec and starts from the same weights;
neither side computes a gradient for the input images.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import xpnet
from _common import (
    Panel,
    as_implemented,
    backend_of,
    bar_plot,
    compare,
    implementations,
    paired_ratio,
    synchronizer,
    write_results,
)
from xpnet import models, nn, optim, train
from xpnet.augment import RandomShift
from xpnet.datasets import load_mnist

LR, BATCH = 5e-3, 128


def torch_layer(spec: dict[str, Any]):
    """The ``torch.nn`` module of one xpnet layer spec (containers recursively)."""
    import torch

    tnn = torch.nn
    kind, cfg = spec["type"], spec["config"]
    if kind == "Sequential":
        return tnn.Sequential(*(torch_layer(layer) for layer in cfg["layers"]))
    if kind == "Residual":
        return TorchResidual(
            torch_layer(cfg["block"]),
            None if cfg["shortcut"] is None else torch_layer(cfg["shortcut"]),
        )
    if kind == "Conv2d":
        return tnn.Conv2d(
            cfg["in_channels"],
            cfg["out_channels"],
            tuple(cfg["kernel_size"]),
            stride=tuple(cfg["stride"]),
            padding=tuple(cfg["padding"]),
            bias=cfg["bias"],
        )
    if kind == "Linear":
        return tnn.Linear(cfg["in_features"], cfg["out_features"], bias=cfg["bias"])
    if kind in ("MaxPool2d", "AvgPool2d"):
        return getattr(tnn, kind)(cfg["kernel_size"], stride=cfg["stride"], padding=cfg["padding"])
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(tnn, kind)(**cfg)
    if kind == "AdaptiveAvgPool2d":
        return tnn.AdaptiveAvgPool2d(tuple(cfg["output_size"]))
    return getattr(tnn, kind)(**cfg)


def TorchResidual(block, shortcut=None):
    """``block(x) + shortcut(x)`` as a ``torch.nn.Module`` with xpnet's parameter names."""
    import torch

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    return Residual()


def torch_twin(model: nn.Module, device: str):
    """The same architecture and weights (and buffers) as a ``torch.nn`` module."""
    import torch

    twin = torch_layer(model.spec())
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return twin.to(device)


class Trainer:
    """One implementation's model, optimizer and data, with the same recipe for all."""

    def __init__(
        self,
        impl: str,
        data: tuple,
        seed: int,
        total_steps: int,
        model: str = "mnist_cnn",
        augment: bool = False,
    ) -> None:
        self.impl = impl
        self.sync = synchronizer(impl)
        (x, y), self.test = data
        reference = models.build(model, seed=seed, backend="numpy")
        self.augment = RandomShift(2, seed=seed) if augment else None
        if impl.startswith("xpnet"):
            self.model = reference.to(backend_of(impl))
            self.opt = optim.Adam(self.model.parameters(), lr=LR)
            self.sched = optim.OneCycleLR(self.opt, LR, total_steps)
            self.loss = nn.CrossEntropyLoss(check_range=False)
            self.x, self.y = train.to_model_device(self.model, x, y)
        else:
            import torch

            dev = "cuda" if impl == "torch-cuda" else "cpu"
            self.model = torch_twin(reference, dev)
            self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
            self.sched = torch.optim.lr_scheduler.OneCycleLR(
                self.opt, LR, total_steps=total_steps, anneal_strategy="cos", cycle_momentum=False
            )
            self.x, self.y = torch.tensor(x, device=dev), torch.tensor(y, device=dev)
        self.seed = seed

    def step(self, xb: Any, yb: Any) -> None:
        if self.impl.startswith("xpnet"):
            as_implemented(self.impl, lambda: self.xpnet_step(xb, yb))()
        else:
            import torch.nn.functional as tf

            self.opt.zero_grad(set_to_none=True)
            tf.cross_entropy(self.model(xb), yb).backward()
            self.opt.step()
        self.sched.step()

    def xpnet_step(self, xb: Any, yb: Any) -> None:
        self.loss(self.model(xb), yb)
        self.model.backward(self.loss.backward(), input_grad=False)
        self.opt.step()

    def epoch(self, epoch: int) -> float:
        """Seconds for one epoch over the data (seeded permutation, batches on device)."""
        n = self.x.shape[0]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        if self.impl.startswith("xpnet"):
            xp = xpnet.namespace(backend_of(self.impl))
            order = xpnet.asarray(order, backend=backend_of(self.impl))
            take = lambda a, idx: xp.take(a, idx, axis=0)  # noqa: E731
        else:
            import torch

            order = torch.tensor(order, device=self.x.device)
            take = lambda a, idx: a[idx]  # noqa: E731
        self.sync()
        time.sleep(0.2)  # the other library's worker threads go idle (see _common.compare)
        start = time.perf_counter()
        for first in range(0, n, BATCH):
            idx = order[first : min(first + BATCH, n)]
            xb = take(self.x, idx)
            self.step(xb if self.augment is None else self.augment(xb), take(self.y, idx))
        self.sync()
        return time.perf_counter() - start

    def accuracy(self) -> float:
        x_test, y_test = self.test
        if self.impl.startswith("xpnet"):
            return train.evaluate(self.model, x_test, y_test)["accuracy"]
        import torch

        self.model.eval()
        with torch.no_grad():
            xt = torch.tensor(x_test, device=self.x.device)
            pred = torch.cat(
                [self.model(xt[i : i + 1000]).argmax(1) for i in range(0, len(xt), 1000)]
            )
        self.model.train()
        return float((pred.cpu().numpy() == y_test).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a 1,024-image subset, 1 repeat (CI smoke run)"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--model", choices=list(models.MODELS), default="mnist_cnn")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the accuracy run")
    parser.add_argument("--augment", action="store_true", help="random shifts of up to 2 px")
    args = parser.parse_args(argv)
    recipe = {"model": args.model, "augment": args.augment}
    repeats = args.repeats or (1 if args.quick else 3)
    (x, y), (xt, yt) = load_mnist(normalize=True)
    if args.quick:
        x, y, xt, yt = x[:1024], y[:1024], xt[:1000], yt[:1000]
    data = ((x, y), (xt, yt))
    steps_per_epoch = -(-len(x) // BATCH)
    step_impls = implementations()
    impls = [impl for impl in step_impls if not impl.endswith("-generic")]
    results: dict[str, Any] = {impl: {"epoch_s": []} for impl in step_impls}

    steps = {}  # the training step at batch 128 on one fixed batch, interleaved rounds
    for impl in step_impls:
        trainer = Trainer(impl, data, seed=0, total_steps=100_000, **recipe)
        xb, yb = trainer.x[:BATCH], trainer.y[:BATCH]
        steps[impl] = lambda t=trainer, a=xb, b=yb: t.step(a, b)
    step_times = compare(
        steps, warmup=3, rounds=2 if args.quick else 10, block=3 if args.quick else 10
    )
    for impl, timing in step_times.items():
        results[impl]["step_b128"] = timing
        print(f"{impl:<20} training step b128 {timing['median_s'] * 1e3:8.2f} ms", flush=True)
    for repeat in range(repeats):  # interleaved epochs
        for impl in impls:
            trainer = Trainer(impl, data, seed=repeat, total_steps=steps_per_epoch, **recipe)
            seconds = trainer.epoch(0)
            results[impl]["epoch_s"].append(seconds)
            print(f"repeat {repeat + 1}/{repeats}  {impl:<12} epoch {seconds:7.2f} s", flush=True)
    for impl in impls:  # time to 99% test accuracy, the recipe's epochs
        trainer = Trainer(impl, data, seed=0, total_steps=args.epochs * steps_per_epoch, **recipe)
        elapsed, reached, accuracies = 0.0, None, []
        for epoch in range(args.epochs):
            elapsed += trainer.epoch(epoch)
            accuracies.append(trainer.accuracy())
            if reached is None and accuracies[-1] >= 0.99:
                reached = elapsed
        results[impl]["time_to_99_s"] = reached
        results[impl]["test_accuracy_per_epoch"] = accuracies
        results[impl]["train_s"] = elapsed
        print(f"{impl:<12} test accuracy per epoch {accuracies}; 99% after {reached} s", flush=True)

    for impl in impls:
        epochs = results[impl]["epoch_s"]
        results[impl]["epoch_median_s"] = float(np.median(epochs))
        results[impl]["epoch_spread_s"] = [min(epochs), max(epochs)]
    results["xpnet-numpy-generic"].pop("epoch_s", None)
    ratios = {}
    if "torch-cpu" in results:
        ratios["step b128: xpnet-numpy / torch-cpu"] = paired_ratio(
            step_times, "xpnet-numpy", "torch-cpu"
        )
        ratios["step b128: xpnet-numpy-generic / torch-cpu"] = paired_ratio(
            step_times, "xpnet-numpy-generic", "torch-cpu"
        )
        ratios["epoch: xpnet-numpy / torch-cpu"] = statistics.median(
            a / b
            for a, b in zip(results["xpnet-numpy"]["epoch_s"], results["torch-cpu"]["epoch_s"])
        )
    ratios["step b128: generic / fast path (numpy)"] = paired_ratio(
        step_times, "xpnet-numpy-generic", "xpnet-numpy"
    )
    if "xpnet-cupy" in results and "torch-cuda" in results:
        ratios["step b128: xpnet-cupy / torch-cuda"] = paired_ratio(
            step_times, "xpnet-cupy", "torch-cuda"
        )
        ratios["epoch: xpnet-cupy / torch-cuda"] = (
            results["xpnet-cupy"]["epoch_median_s"] / results["torch-cuda"]["epoch_median_s"]
        )
        ratios["epoch GPU speedup: xpnet-numpy / xpnet-cupy"] = (
            results["xpnet-numpy"]["epoch_median_s"] / results["xpnet-cupy"]["epoch_median_s"]
        )
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}")
    payload = {
        "quick": args.quick,
        "train_images": len(x),
        "batch_size": BATCH,
        "lr": LR,
        "model": args.model,
        "epochs": args.epochs,
        "augment": args.augment,
        "results": results,
        "ratios": ratios,
    }
    section = "mnist" if args.model == "mnist_cnn" else f"mnist-{args.model}"
    path = write_results(section, payload, args.out)
    plot = path.with_name(f"{path.stem}-{section}.png")
    step_notes = None
    if "torch-cpu" in results:  # each step's time as a multiple of PyTorch's on the CPU
        reference = results["torch-cpu"]["step_b128"]["median_s"]
        step_notes = {
            impl: [f"{results[impl]['step_b128']['median_s'] / reference:.2f}x"]
            for impl in step_impls
        }
    bar_plot(
        plot,
        Panel(
            ["batch 128"],
            {impl: [results[impl]["step_b128"]["median_s"]] for impl in step_impls},
            ylabel="ms (median)",
            title="training step (x torch-cpu)",
            bar_notes=step_notes,
            log=False,
        ),
        Panel(
            [f"{len(x)} images"],
            {impl: [results[impl]["epoch_median_s"]] for impl in impls},
            ylabel="s (median)",
            title="one epoch, data on the device",
            scale=1.0,
            log=False,
        ),
    )
    print(f"wrote {path} and {plot.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
