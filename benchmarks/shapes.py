"""One conv layer (+ ReLU + 2x2 max-pool where the map allows) over a matrix of shapes:
xpnet on NumPy against PyTorch, forward and backward, paired in one process.

The nets in ``peers.py`` are the shapes the CPU passes were tuned on; users bring others.
This script times a training step's share of one layer for every combination of

- kernel 3, 5 and 7; padding 0 and "same" (``k // 2``); stride 1 and 2;
- channels 1->8, 1->16, 16->32, 32->64, 64->64; maps 28x28 and 14x14; batch 32 and 128

(240 cells), each as forward + backward with a fixed upstream gradient: the input's
gradient too where the layer has more than one input channel (a first layer, on 1
channel, needs none, as in a net). Both libraries get the same weights and inputs; the
calls are interleaved in rounds (``_common.compare``) and each cell's ratio is the median
of its rounds' paired ratios. Writes ``results/<machine>-<date>.json`` (section
``shapes``) and a heatmap ``...-shapes.png`` of xpnet / PyTorch per cell.

    python benchmarks/shapes.py [--quick] [--out DIR]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/shapes.py   # native BLAS
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import xpnet
from _common import RESULTS, compare, machine_facts, machine_name, paired_ratio, write_results
from xpnet import nn

KERNELS = (3, 5, 7)
PADDINGS = ("0", "same")
STRIDES = (1, 2)
CHANNELS = ((1, 8), (1, 16), (16, 32), (32, 64), (64, 64))
MAPS = (28, 14)
BATCHES = (32, 128)


CELL_KEYS = ("kernel", "padding", "stride", "c_in", "c_out", "side", "batch")
QUICK_CELLS = [(5, "0", 1, 1, 8, 14, 8), (3, "same", 2, 16, 32, 14, 8)]


def cells(quick: bool) -> list[dict[str, Any]]:
    """Every combination, as dicts keyed by :data:`CELL_KEYS` (two small ones with ``--quick``)."""
    if quick:
        return [dict(zip(CELL_KEYS, values)) for values in QUICK_CELLS]
    combos = itertools.product(BATCHES, MAPS, CHANNELS, KERNELS, PADDINGS, STRIDES)
    return [
        dict(zip(CELL_KEYS, (k, p, s, ci, co, side, b))) for b, side, (ci, co), k, p, s in combos
    ]


def conv_out(side: int, kernel: int, padding: int, stride: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


def build(cell: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The two layers, their input and the upstream gradient, with the same weights."""
    import torch

    k, s, ci, co = cell["kernel"], cell["stride"], cell["c_in"], cell["c_out"]
    pad = k // 2 if cell["padding"] == "same" else 0
    side_out = conv_out(cell["side"], k, pad, s)
    pool = side_out >= 2
    out_side = side_out // 2 if pool else side_out
    x = rng.standard_normal((cell["batch"], ci, cell["side"], cell["side"])).astype(np.float32)
    grad = rng.standard_normal((cell["batch"], co, out_side, out_side)).astype(np.float32)
    ours = nn.Sequential(
        nn.Conv2d(ci, co, k, stride=s, padding=pad, rng=0, backend="numpy"),
        nn.ReLU(),
        *([nn.MaxPool2d(2)] if pool else []),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(ci, co, k, stride=s, padding=pad),
        torch.nn.ReLU(),
        *([torch.nn.MaxPool2d(2)] if pool else []),
    )
    with torch.no_grad():
        theirs[0].weight.copy_(torch.from_numpy(xpnet.to_numpy(ours[0].weight.data)))
        theirs[0].bias.copy_(torch.from_numpy(xpnet.to_numpy(ours[0].bias.data)))
    input_grad = ci > 1
    x_torch = torch.from_numpy(x).requires_grad_(input_grad)
    grad_torch = torch.from_numpy(grad)

    def xpnet_step() -> None:
        ours(x)
        ours.backward(grad, input_grad=input_grad)

    def torch_step() -> None:
        theirs.zero_grad(set_to_none=True)
        x_torch.grad = None
        theirs(x_torch).backward(grad_torch)

    return {"xpnet": xpnet_step, "torch": torch_step, "pool": pool, "padding": pad}


def measure(cell: dict[str, Any], rounds: int, block: int) -> dict[str, Any]:
    steps = build(cell, np.random.default_rng(0))
    fns = {"xpnet-numpy": steps["xpnet"], "torch-cpu": steps["torch"]}
    times = compare(fns, warmup=2, rounds=rounds, block=block, pause_s=0.1)
    return {
        **cell,
        "pool": steps["pool"],
        "xpnet_ms": times["xpnet-numpy"]["median_s"] * 1e3,
        "torch_ms": times["torch-cpu"]["median_s"] * 1e3,
        "ratio": paired_ratio(times, "xpnet-numpy", "torch-cpu"),
    }


def label(cell: dict[str, Any]) -> tuple[str, str]:
    """(row, column) of a cell in the heatmap."""
    row = f"{cell['c_in']}->{cell['c_out']} {cell['side']}px b{cell['batch']}"
    column = f"k{cell['kernel']} p{cell['padding']} s{cell['stride']}"
    return row, column


def heatmap(path: Path, results: list[dict[str, Any]], title: str) -> Path | None:
    """xpnet / PyTorch per cell, rows = channels, map and batch, columns = k, padding, stride."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = list(dict.fromkeys(label(r)[0] for r in results))
    columns = list(dict.fromkeys(label(r)[1] for r in results))
    grid = np.full((len(rows), len(columns)), np.nan)
    for result in results:
        row, column = label(result)
        grid[rows.index(row), columns.index(column)] = result["ratio"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(columns), 1.2 + 0.32 * len(rows)))
    image = ax.imshow(grid, cmap="RdYlGn_r", vmin=0.5, vmax=1.5, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not math.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="xpnet / PyTorch (time, lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small cells: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    parser.add_argument("--block", type=int, default=2, help="timed calls per round")
    args = parser.parse_args(argv)
    results = []
    for cell in cells(args.quick):
        result = measure(cell, 1 if args.quick else args.rounds, 1 if args.quick else args.block)
        results.append(result)
        row, column = label(result)
        print(f"{row:<22} {column:<14} xpnet {result['xpnet_ms']:8.2f} ms  torch "
              f"{result['torch_ms']:8.2f} ms  ratio {result['ratio']:.2f}", flush=True)  # fmt: skip
    ratios = np.array([r["ratio"] for r in results])
    summary = {
        "cells": len(results),
        "over_1": int(np.sum(ratios > 1.0)),
        "median_ratio": float(np.median(ratios)),
        "worst": max(results, key=lambda r: r["ratio"]),
    }
    payload = {"quick": args.quick, "results": results, "summary": summary}
    path = write_results("shapes", payload, args.out)
    facts = machine_facts()
    title = (f"one conv (+ReLU +2x2 max-pool) fwd+bwd, xpnet / PyTorch, {machine_name(facts)}: "
             f"{summary['over_1']} of {len(results)} cells over 1.0x")  # fmt: skip
    png = heatmap(path.with_name(path.stem + "-shapes.png"), results, title)
    print(f"{summary['over_1']} of {len(results)} cells over 1.0x; median "
          f"{summary['median_ratio']:.2f}x; worst {summary['worst']['ratio']:.2f}x "
          f"({' '.join(label(summary['worst']))})")  # fmt: skip
    print(f"wrote {path}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
