"""Device operations per training step: xpnet's generic code against native PyTorch.

For every shipped model (batch 128, MNIST-sized input) and three optimizers (Adam; SGD
with Nesterov momentum 0.9, the CLI's ``sgd``; SGD with plain momentum 0.9), one training
step as ``xpnet.train.fit`` runs it (take the batch on
the device, forward, loss, backward, optimizer and scheduler step, the on-device loss and
accuracy sums) is run on torch CPU tensors, i.e. xpnet's generic array-API code, the code
CuPy and torch on CUDA run, and its top-level device operations and host syncs are counted
with torch.profiler (see ``launch_count.py``). Beside it: the same net and step in native
PyTorch (``torch.nn`` with foreach Adam / SGD), counted the same way.

The estimate of what that costs on a GPU: host time per step = operations x 8 us; a
training epoch of 430 steps (55,000 images, batch 128).

    python benchmarks/launches.py            # JSON + PNG into benchmarks/results/
    python benchmarks/launches.py --quick    # the default model only (CI smoke run)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Panel, bar_plot, write_results
from launch_count import count_ops
from xpnet import models, nn, optim
from xpnet.kernels import use_fast_paths
from xpnet.train import _Run, _Totals

BATCH = 128
US_PER_OP = 8.0
STEPS_PER_EPOCH = 430
OPTIMIZERS = ("adam", "sgd", "momentum")
"""``sgd``: Nesterov momentum 0.9 (``optim.make_optimizer("sgd", ...)``, the CLI's);
``momentum``: plain momentum 0.9."""


def make_xpnet_optimizer(name: str, params: Any) -> optim.Optimizer:
    if name == "momentum":
        return optim.SGD(params, lr=optim.DEFAULT_LR["sgd"], momentum=0.9)
    return optim.make_optimizer(name, params, optim.DEFAULT_LR[name])


def xpnet_step(model_name: str, optimizer: str, *, backend: str = "torch") -> Any:
    """One of ``fit``'s training steps of ``model_name`` on ``backend``, ready to call."""
    model = models.build(model_name, seed=0, backend=backend)
    opt = make_xpnet_optimizer(optimizer, model.parameters())
    sched = optim.OneCycleLR(opt, opt.lr, 1000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4 * BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 4 * BATCH)
    settings = {"batch_size": BATCH, "augment": None, "checkpoint": None}
    loss = nn.CrossEntropyLoss(check_range=False)
    run = _Run(model, loss, opt, sched, (x, y), settings)
    totals = _Totals.start({})
    order = run.xp.asarray(rng.permutation(4 * BATCH), device=run.device)
    state = {"step": 0}

    def step() -> None:
        start = (state["step"] % 4) * BATCH
        state["step"] += 1
        run.step(order[start : start + BATCH], totals, state["step"])

    return step


def torch_step(model_name: str, optimizer: str) -> Any:
    """The same net and step in native PyTorch (foreach optimizers), ready to call."""
    import torch

    from mnist import torch_twin

    model = torch_twin(models.build(model_name, seed=0, backend="numpy"), "cpu")
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=5e-3, foreach=True)
    else:
        nesterov = optimizer == "sgd"
        opt = torch.optim.SGD(
            model.parameters(), lr=0.05, momentum=0.9, nesterov=nesterov, foreach=True
        )
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((4 * BATCH, 1, 28, 28)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 10, 4 * BATCH))
    order = torch.tensor(rng.permutation(4 * BATCH))
    sums = {
        "loss": torch.zeros((), dtype=torch.float64),
        "correct": torch.zeros((), dtype=torch.int64),
    }
    state = {"step": 0}

    def step() -> None:
        start = (state["step"] % 4) * BATCH
        state["step"] += 1
        index = order[start : start + BATCH]
        xb, yb = x[index], y[index]
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        loss.backward()
        opt.step()
        sums["loss"] += loss.detach().double() * BATCH
        sums["correct"] += (logits.argmax(1) == yb).sum()

    return step


def measure(step: Any, warmup: int = 3) -> dict[str, Any]:
    """Count one step after ``warmup`` steps (the optimizers' state then exists)."""
    for _ in range(warmup):
        step()
    return count_ops(step).to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the default model only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    names = ["mnist_cnn"] if args.quick else list(models.MODELS)
    rows: dict[str, dict[str, Any]] = {}
    print(f"{'model':<14}{'optimizer':<10}{'xpnet ops':>10}{'syncs':>7}{'torch ops':>10}"
          f"{'xpnet ms/epoch':>16}{'torch ms/epoch':>16}")  # fmt: skip
    for name in names:
        layers = sum(1 for _ in models.build(name, backend="numpy").children())
        for optimizer in OPTIMIZERS:
            with use_fast_paths(False):
                ours = measure(xpnet_step(name, optimizer))
            theirs = measure(torch_step(name, optimizer))
            row = {
                "layers": layers,
                "xpnet": ours,
                "torch": theirs,
                "xpnet_host_ms_per_epoch": ours["ops"] * US_PER_OP * STEPS_PER_EPOCH / 1e3,
                "torch_host_ms_per_epoch": theirs["ops"] * US_PER_OP * STEPS_PER_EPOCH / 1e3,
            }
            rows[f"{name}/{optimizer}"] = row
            print(f"{name:<14}{optimizer:<10}{ours['ops']:>10}{ours['syncs']:>7}"
                  f"{theirs['ops']:>10}{row['xpnet_host_ms_per_epoch']:>16.0f}"
                  f"{row['torch_host_ms_per_epoch']:>16.0f}")  # fmt: skip
    payload = {
        "quick": args.quick,
        "batch": BATCH,
        "us_per_op": US_PER_OP,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "steps": rows,
    }
    path = write_results("launches", payload, args.out)
    _plot(rows, path.with_name(f"{path.stem}-launches.png"))
    print(f"\nwrote {path}")
    return 0


def _plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    series = {
        "xpnet (generic)": [row["xpnet"]["ops"] for row in rows.values()],
        "PyTorch (native)": [row["torch"]["ops"] for row in rows.values()],
    }
    bar_plot(
        path,
        Panel(list(rows), series, "device operations per training step",
              "operations a training step issues, batch 128", scale=1.0, log=False),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
