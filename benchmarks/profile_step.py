"""Where the NumPy training step's time goes: per layer, and per phase of each conv layer.

    python benchmarks/profile_step.py [--quick] [--rounds N] [--out DIR]

1. The default model's training step at batch 128 on real MNIST images, each layer's
   forward and backward timed inside the step, with the NumPy fast paths on and off
   (the generic array-API code) in interleaved rounds. The first conv layer's backward is
   also timed with its input gradient (which the step skips) to show what skipping saves.
2. The phases of each conv layer (im2col, the matrix products, col2im) on both paths.
3. PyTorch's profile of the same step (same model, weights and batch), by op.

Writes the ``profile`` section of ``results/<machine>-<date>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_ms, write_results
from xpnet import models, nn, optim
from xpnet.datasets import load_mnist
from xpnet.functional._windows import col2im, im2col
from xpnet.kernels import numpy as numpy_kernels
from xpnet.kernels import use_fast_paths

BATCH = 128


class LayerClock:
    """Wraps every layer's forward and backward of a model to record their durations."""

    def __init__(self, model: nn.Sequential) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.untimed_backward: list[Callable[..., Any]] = []
        self.last_grad: dict[int, Any] = {}  # the gradient each layer's backward last got
        for index, layer in enumerate(model.layers):
            self._wrap(index, f"{index} {type(layer).__name__}", layer)

    def _wrap(self, index: int, name: str, layer: nn.Module) -> None:
        forward, backward = layer.forward, layer.backward
        self.untimed_backward.append(backward)

        def timed_forward(x):
            start = time.perf_counter()
            out = forward(x)
            self.times[f"{name} forward"].append(time.perf_counter() - start)
            return out

        def timed_backward(grad, **kwargs):
            self.last_grad[index] = grad
            start = time.perf_counter()
            out = backward(grad, **kwargs)
            self.times[f"{name} backward"].append(time.perf_counter() - start)
            return out

        layer.forward, layer.backward = timed_forward, timed_backward


def profile_layers(rounds: int, block: int) -> dict[str, dict[str, float]]:
    """Median ms of each layer's forward/backward in the step, fast paths on and off."""
    (x, y), _ = load_mnist(normalize=True)
    xb, yb = x[:BATCH], y[:BATCH].astype(np.int64)
    clocks, steps = {}, {}
    for mode in ("fast", "generic"):
        model = models.mnist_cnn(seed=0, backend="numpy")
        opt = optim.Adam(model.parameters(), lr=5e-3)
        loss = nn.CrossEntropyLoss(check_range=False)
        clock = LayerClock(model)

        def step(model=model, opt=opt, loss=loss, clock=clock):
            start = time.perf_counter()
            loss(model(xb), yb)
            model.backward(loss.backward(), input_grad=False)
            opt.step()
            clock.times["whole step"].append(time.perf_counter() - start)
            # What the step skips: the first layer's input gradient (no state changes).
            begin = time.perf_counter()
            clock.untimed_backward[0](clock.last_grad[0], input_grad=True)
            clock.times["0 Conv2d backward, input gradient too"].append(time.perf_counter() - begin)

        clocks[mode], steps[mode] = clock, step
    for _ in range(rounds):
        for mode, step in steps.items():
            time.sleep(0.05)
            with use_fast_paths(mode == "fast"):
                for _ in range(block + 1):
                    step()
    table: dict[str, dict[str, float]] = {}
    for mode, clock in clocks.items():
        for name, times in clock.times.items():
            table.setdefault(name, {})[mode] = statistics.median(times) * 1e3
    return table


def profile_conv_phases(repeats: int) -> dict[str, dict[str, float]]:
    """Median ms of each phase of the two conv layers at batch 128, on both paths."""
    phases: dict[str, dict[str, float]] = {}
    for label, (c_in, c_out, side) in {"conv1": (1, 16, 28), "conv2": (16, 32, 12)}.items():
        for path, table in conv_phase_functions(c_in, c_out, side).items():
            for phase, fn in table.items():
                phases.setdefault(f"{label} {phase}", {})[path] = median_ms(fn, repeats)
    return phases


def conv_phase_functions(
    c_in: int, c_out: int, side: int, k: int = 5
) -> dict[str, dict[str, Callable[[], Any]]]:
    """The phases of one conv layer's forward and backward, generic and fast."""
    rng = np.random.default_rng(0)
    out_side = side - k + 1
    out_hw = (out_side, out_side)
    x = numpy_kernels.as_nchw(rng.standard_normal((BATCH, side, side, c_in)).astype(np.float32))
    w = (rng.standard_normal((c_out, c_in, k, k)) * 0.1).astype(np.float32)
    grad = numpy_kernels.as_nchw(rng.standard_normal((BATCH, *out_hw, c_out)).astype(np.float32))
    # generic: one gather of every window, columns per image (N, C_in*k*k, L)
    cols = im2col(x, (k, k), (1, 1), out_hw, xp=np).reshape(BATCH, c_in * k * k, -1)
    w2 = w.reshape(c_out, -1)
    g3 = grad.reshape(BATCH, c_out, -1)
    dcols = (w2.T @ g3).reshape(BATCH, c_in, k * k, -1)
    # fast: channels-last rows (N*L, k*k*C_in)
    x_nhwc = numpy_kernels.channels_last(x)
    rows = numpy_kernels.im2col_rows(x_nhwc, (k, k), (1, 1), out_hw)
    w_rows = np.permute_dims(w, (0, 2, 3, 1)).reshape(c_out, -1)
    g_rows = numpy_kernels.channels_last(grad).reshape(-1, c_out)
    return {
        "generic": {
            "im2col": lambda: im2col(x, (k, k), (1, 1), out_hw, xp=np),
            "forward product": lambda: w2 @ cols,
            "weight-gradient product": lambda: (g3 @ np.matrix_transpose(cols)).sum(axis=0),
            "column-gradient product": lambda: w2.T @ g3,
            "col2im": lambda: col2im(
                dcols, (BATCH, c_in, side, side), (0, 0), (k, k), (1, 1), out_hw, xp=np
            ),
        },
        "fast": {
            "im2col": lambda: numpy_kernels.im2col_rows(x_nhwc, (k, k), (1, 1), out_hw),
            "forward product": lambda: rows @ w_rows.T,
            "weight-gradient product": lambda: (rows.T @ g_rows).T,
            "col2im, with the column-gradient products": lambda: numpy_kernels.col2im_rows(
                g_rows.reshape(BATCH, -1, c_out), w, (side, side), (1, 1), out_hw
            ),
        },
    }


def profile_torch(steps: int) -> dict[str, float] | None:
    """PyTorch's own profile of the same step (same model and weights): ms per step by op,
    the ops that take at least 1% of the step. ``None`` without PyTorch."""
    try:
        import torch
        from torch.profiler import profile
    except ImportError:
        return None
    from mnist import torch_twin

    (x, y), _ = load_mnist(normalize=True)
    xb, yb = torch.tensor(x[:BATCH]), torch.tensor(y[:BATCH].astype(np.int64))
    model = torch_twin(models.mnist_cnn(seed=0, backend="numpy"), "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    with profile() as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - start) / steps * 1e3
    per_op = {event.key: event.self_cpu_time_total / 1e3 / steps for event in prof.key_averages()}
    table = {k: v for k, v in sorted(per_op.items(), key=lambda kv: -kv[1]) if v >= wall / 100}
    table["whole step (wall, profiled)"] = wall
    return table


def print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}\n{'':<44}{'generic ms':>12}{'fast ms':>10}{'ratio':>8}")
    for name, row in table.items():
        generic, fast = row.get("generic", float("nan")), row.get("fast", float("nan"))
        print(f"{name:<44}{generic:>12.3f}{fast:>10.3f}{generic / fast:>8.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds (CI smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 8)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 8)
    layers = profile_layers(rounds, block=2 if args.quick else 8)
    phases = profile_conv_phases(repeats=3 if args.quick else 20)
    torch_ops = profile_torch(steps=3 if args.quick else 20)
    print_table("Training step, batch 128: median per layer", layers)
    print_table("Conv layers at batch 128: median per phase", phases)
    if torch_ops is not None:
        print("\nPyTorch, the same step: ms per step by op (torch.profiler, self CPU time)")
        for name, ms in torch_ops.items():
            print(f"{name:<44}{ms:>10.3f}")
    payload = {
        "quick": args.quick,
        "rounds": rounds,
        "layers_ms": layers,
        "conv_phases_ms": phases,
        "torch_ops_ms": torch_ops,
    }
    path = write_results("profile", payload, args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
