"""xpnet on JAX, eager and compiled (``fit(..., compile=True)``), against native JAX.

One training step of the default model (``mnist_cnn``; batch 128, Adam, a one-cycle
schedule, the step ``xpnet.train.fit`` runs), timed side by side in one process:

- ``xpnet-numpy``: xpnet on NumPy with its kernels (the default), for scale;
- ``xpnet-jax-eager``: xpnet's generic code on JAX arrays, one operation at a time;
- ``xpnet-jax-compiled``: the same code traced once by ``jax.jit`` (:mod:`xpnet.compiled`);
- ``jax-native``: the same net written for JAX (``lax.conv_general_dilated``,
  ``lax.reduce_window``, ``jax.value_and_grad``, Adam in ``jax.numpy``), jitted, with the
  same initial weights;
- ``torch-cpu``: PyTorch eager (foreach Adam), where installed.

Also the compile time (the first call: trace and XLA compile) of both compiled steps.
On a machine with a GPU, JAX's default device is the GPU: the JAX rows are then GPU
figures (``jax.devices()`` is recorded).

    python benchmarks/jax_step.py            # JSON + PNG into benchmarks/results/
    python benchmarks/jax_step.py --quick    # a short smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Panel, bar_plot, compare, paired_ratio, write_results
from xpnet import models, nn, optim
from xpnet.train import _Run, _Totals

BATCH = 128
LR = 5e-3


def xpnet_step(backend: str, *, compiled: bool = False, batches: int = 4) -> Any:
    """One of ``fit``'s steps of ``mnist_cnn`` on ``backend``, waiting for its result."""
    model = models.build("mnist_cnn", seed=0, backend=backend)
    opt = optim.Adam(model.parameters(), lr=LR)
    sched = optim.OneCycleLR(opt, LR, 100_000)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batches * BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batches * BATCH)
    settings = {"batch_size": BATCH, "augment": None, "checkpoint": None, "compile": compiled}
    run = _Run(model, nn.CrossEntropyLoss(check_range=False), opt, sched, (x, y), settings)
    totals = _Totals.start({})
    order = run.xp.asarray(rng.permutation(batches * BATCH), device=run.device)
    state = {"step": 0}
    wait = _waiter(backend)

    def step() -> None:
        start = (state["step"] % batches) * BATCH
        state["step"] += 1
        run.step(order[start : start + BATCH], totals, state["step"])
        run.window.clear()  # fit reads these back every 20 steps; here nobody does
        wait(model.parameters()[-1].data)

    return step


def _waiter(backend: str) -> Any:
    if backend == "jax":
        import jax

        return jax.block_until_ready
    return lambda _: None


def native_jax_step(batches: int = 4) -> Any:
    """The same net, loss and Adam in JAX itself, jitted; same initial weights."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    start_model = models.build("mnist_cnn", seed=0, backend="numpy")
    params = [jnp.asarray(p.data) for p in start_model.parameters()]

    def conv_block(x: Any, w: Any, b: Any) -> Any:
        y = lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))  # fmt: skip
        y = jax.nn.relu(y + b[None, :, None, None])
        return lax.reduce_window(y, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(params: list[Any], x: Any, y: Any) -> Any:
        w1, b1, w2, b2, w3, b3, w4, b4 = params
        h = conv_block(conv_block(x, w1, b1), w2, b2).reshape(x.shape[0], -1)
        h = jax.nn.relu(h @ w3.T + b3)
        logits = h @ w4.T + b4
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

    def train_step(state: Any, x: Any, y: Any, lr: Any) -> Any:
        params, m, v, t = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        t = t + 1
        m = [0.9 * a + 0.1 * g for a, g in zip(m, grads)]
        v = [0.999 * a + 0.001 * g * g for a, g in zip(v, grads)]
        step_size = lr / (1 - 0.9**t)
        bias2 = jnp.sqrt(1 - 0.999**t)
        params = [p - step_size * a / (jnp.sqrt(b) / bias2 + 1e-8)
                  for p, a, b in zip(params, m, v)]  # fmt: skip
        return (params, m, v, t), loss

    program = jax.jit(train_step, donate_argnums=(0,))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batches * BATCH, 1, 28, 28)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, batches * BATCH).astype(np.int32))
    order = jnp.asarray(rng.permutation(batches * BATCH).astype(np.int32))
    zeros = [jnp.zeros_like(p) for p in params]
    holder = {"state": (params, zeros, [jnp.zeros_like(p) for p in params], 0.0), "step": 0}

    def step() -> None:
        start = (holder["step"] % batches) * BATCH
        holder["step"] += 1
        index = order[start : start + BATCH]
        holder["state"], loss = program(holder["state"], x[index], y[index], LR)
        jax.block_until_ready(loss)

    return step


def torch_step() -> Any:
    from launches import torch_step as make

    return make("mnist_cnn", "adam")


def first_call_s(step: Any) -> float:
    """Seconds of the first call: for a compiled step, its trace and compile."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import jax

    steps = {
        "xpnet-numpy": xpnet_step("numpy"),
        "xpnet-jax-eager": xpnet_step("jax"),
        "xpnet-jax-compiled": xpnet_step("jax", compiled=True),
        "jax-native": native_jax_step(),
    }
    with contextlib.suppress(ImportError):  # PyTorch is optional here
        steps["torch-cpu"] = torch_step()
    compile_s = {name: first_call_s(steps[name]) for name in ("xpnet-jax-compiled", "jax-native")}
    rounds, block = (1, 2) if args.quick else (5, 5)
    times = compare(steps, warmup=1, rounds=rounds, block=block, pause_s=0.3)
    baseline = "jax-native"
    ratios = {name: paired_ratio(times, name, baseline) for name in steps}
    print(f"{'implementation':<22}{'ms/step':>10}{'x jax-native':>14}")
    for name, result in times.items():
        print(f"{name:<22}{result['median_s'] * 1e3:>10.1f}{ratios[name]:>14.2f}")
    for name, seconds in compile_s.items():
        print(f"first call (trace + compile) of {name}: {seconds:.2f} s")
    payload = {
        "quick": args.quick,
        "model": "mnist_cnn",
        "batch": BATCH,
        "optimizer": "adam",
        "jax": jax.__version__,
        "jax_devices": [str(d) for d in jax.devices()],
        "times": times,
        "ratio_to_jax_native": ratios,
        "first_call_s": compile_s,
    }
    path = write_results("jax_step", payload, args.out)
    names = list(times)
    plot = bar_plot(
        path.with_name(path.stem + "-jax-step.png"),
        Panel(
            groups=names,
            series={"ms per step": [times[n]["median_s"] for n in names]},
            ylabel="ms per training step (median)",
            title=f"mnist_cnn, batch {BATCH}, Adam: JAX on {jax.devices()[0].platform}",
            notes=[f"{ratios[n]:.2f}x" for n in names],
        ),
    )
    print(f"wrote {path}" + (f" and {plot}" if plot else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
