"""Forward+backward time of each layer: xpnet on every backend against PyTorch, same inputs.

    python benchmarks/ops.py [--quick] [--rounds N] [--out DIR]

Implementations: xpnet-numpy (with its NumPy fast paths), xpnet-numpy-generic (the generic
array-API code, fast paths off), xpnet-cupy, torch-cpu, torch-cuda, those usable here.
Each case is checked for correctness against PyTorch before it is timed; timing is
interleaved in rounds (``_common.compare``). Input gradients are computed for every op,
on both sides.
"""

from __future__ import annotations

import argparse
import sys
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
    write_results,
)
from xpnet import functional as F

# name, op, input shape, parameters
CASES: list[tuple[str, str, tuple[int, ...], dict[str, Any]]] = [
    *[
        (f"conv1 1->16 5x5 28px b{b}", "conv", (b, 1, 28, 28), {"c_out": 16, "k": 5, "pad": 0})
        for b in (32, 128, 512)
    ],
    *[
        (f"conv2 16->32 5x5 12px b{b}", "conv", (b, 16, 12, 12), {"c_out": 32, "k": 5, "pad": 0})
        for b in (32, 128, 512)
    ],
    ("conv 64->64 3x3 32px b32", "conv", (32, 64, 32, 32), {"c_out": 64, "k": 3, "pad": 1}),
    ("maxpool 2x2 16@24px b128", "maxpool", (128, 16, 24, 24), {}),
    ("linear 512->128 b128", "linear", (128, 512), {"out": 128}),
    ("softmax-CE 10 b128", "xent", (128, 10), {}),
]
QUICK = {
    "conv1 1->16 5x5 28px b32",
    "conv2 16->32 5x5 12px b32",
    "maxpool 2x2 16@24px b128",
    "linear 512->128 b128",
    "softmax-CE 10 b128",
}


def make_inputs(
    op: str, shape: tuple[int, ...], params: dict[str, Any], seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.standard_normal(shape).astype(np.float32)}
    if op == "conv":
        arrays["w"] = (
            rng.standard_normal((params["c_out"], shape[1], params["k"], params["k"])) * 0.1
        ).astype(np.float32)
        arrays["b"] = rng.standard_normal(params["c_out"]).astype(np.float32)
    elif op == "linear":
        arrays["w"] = (rng.standard_normal((params["out"], shape[1])) * 0.05).astype(np.float32)
        arrays["b"] = rng.standard_normal(params["out"]).astype(np.float32)
    elif op == "xent":
        arrays["labels"] = rng.integers(0, shape[1], size=shape[0])
    return arrays


def xpnet_step(op: str, params: dict[str, Any], arrays: dict[str, Any]):
    """One forward+backward of the op; returns the outputs and gradients."""
    x = arrays["x"]
    if op == "conv":
        out, saved = F.conv2d_forward(x, arrays["w"], arrays["b"], padding=params["pad"])
        return (out, *F.conv2d_backward(out, saved))
    if op == "maxpool":
        out, saved = F.max_pool2d_forward(x, 2)
        return out, F.max_pool2d_backward(out, saved)
    if op == "linear":
        out, saved = F.linear_forward(x, arrays["w"], arrays["b"])
        return (out, *F.linear_backward(out, saved))
    loss, saved = F.cross_entropy_forward(x, arrays["labels"], check_range=False)
    return loss, F.cross_entropy_backward(1.0, saved)


def torch_step(op: str, params: dict[str, Any], tensors: dict[str, Any]):
    import torch.nn.functional as tf

    x = tensors["x"]
    leaves = [t for k, t in tensors.items() if k != "labels"]
    for t in leaves:
        t.grad = None
    if op == "conv":
        out = tf.conv2d(x, tensors["w"], tensors["b"], padding=params["pad"])
    elif op == "maxpool":
        out = tf.max_pool2d(x, 2)
    elif op == "linear":
        out = tf.linear(x, tensors["w"], tensors["b"])
    else:
        out = tf.cross_entropy(x, tensors["labels"])
        out.backward()
        return out.detach(), x.grad
    out.backward(out.detach())
    return (out.detach(), *(t.grad for t in leaves))


def place(impl: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if impl.startswith("xpnet"):
        return {k: xpnet.asarray(v, backend=backend_of(impl)) for k, v in arrays.items()}
    import torch

    dev = "cuda" if impl == "torch-cuda" else "cpu"
    return {k: torch.tensor(v, device=dev, requires_grad=k != "labels") for k, v in arrays.items()}


def run_case(impl: str, op: str, params: dict[str, Any], arrays: dict[str, Any]):
    step = xpnet_step if impl.startswith("xpnet") else torch_step
    return as_implemented(impl, lambda: step(op, params, arrays))()


def check_against_reference(case: str, results: dict[str, list[Any]]) -> None:
    reference = results.get("torch-cpu")
    if reference is None:
        return
    for impl, outputs in results.items():
        for got, expected in zip(outputs, reference):
            got, expected = (
                xpnet.to_numpy(got).astype(np.float64),
                xpnet.to_numpy(expected).astype(np.float64),
            )
            error = np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-12)
            if error > 1e-4:
                raise SystemExit(
                    f"{case}: {impl} disagrees with torch-cpu (relative error {error:.2e})"
                )


RATIOS = [  # (label, numerator, denominator)
    ("xpnet-numpy / torch-cpu", "xpnet-numpy", "torch-cpu"),
    ("generic / fast path (numpy)", "xpnet-numpy-generic", "xpnet-numpy"),
    ("xpnet-cupy / torch-cuda", "xpnet-cupy", "torch-cuda"),
    ("GPU speedup (numpy / cupy)", "xpnet-numpy", "xpnet-cupy"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few cases and rounds (CI smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default benchmarks/results)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 7)
    block = 2 if args.quick else 5
    impls = implementations()
    cases = [c for c in CASES if not args.quick or c[0] in QUICK]
    rows = []
    for name, op, shape, params in cases:
        arrays = make_inputs(op, shape, params)
        placed = {impl: place(impl, arrays) for impl in impls}
        check_against_reference(
            name, {impl: run_case(impl, op, params, placed[impl]) for impl in impls}
        )
        times = compare(
            {
                impl: lambda impl=impl, op=op, params=params, placed=placed: run_case(
                    impl, op, params, placed[impl]
                )
                for impl in impls
            },
            warmup=1 if args.quick else 2,
            rounds=rounds,
            block=block,
        )
        row: dict[str, Any] = {"case": name, "op": op, "shape": list(shape), "times": times}
        row["ratios"] = {
            label: paired_ratio(times, a, b) for label, a, b in RATIOS if a in times and b in times
        }
        rows.append(row)
        print(
            f"{name:<28}"
            + "  ".join(f"{impl} {t['median_s'] * 1e3:8.3f} ms" for impl, t in times.items())
            + "  "
            + "  ".join(f"{k} {v:.2f}" for k, v in row["ratios"].items()),
            flush=True,
        )
    payload = {"quick": args.quick, "rounds": rounds, "block": block, "cases": rows}
    path = write_results("ops", payload, args.out)
    plot = path.with_name(path.stem + "-ops.png")
    notes = [
        "  ".join(
            f"{label.split(' ')[0].replace('xpnet-', '')}/torch {r['ratios'][label]:.2f}"
            for label in ("xpnet-numpy / torch-cpu", "xpnet-cupy / torch-cuda")
            if label in r["ratios"]
        )
        for r in rows
    ]
    bar_plot(
        plot,
        Panel(
            [r["case"] for r in rows],
            {impl: [r["times"][impl]["median_s"] for r in rows] for impl in impls},
            ylabel="forward+backward, ms (median)",
            title="xpnet vs PyTorch per layer (paired ratio above each case)",
            notes=notes,
        ),
    )
    print(f"wrote {path} and {plot.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
