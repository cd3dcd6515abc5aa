"""Data-parallel scaling on this machine, and on paper for 1-64 GPUs.

Measured: one training epoch of the default model on MNIST (55,000 images, global batch
128, Adam), as 1 process with 2 threads and as 2 ranks (``mpiexec -n 2``) with 1 thread
each; images/s of the epoch, and the gradient allreduce's time and bytes per step.

On paper: for each shipped model, the bytes one step's allreduce sends (4 x parameters),
a ring allreduce's time at NVLink and InfiniBand bandwidths (2 (k-1)/k x bytes /
bandwidth + 2 (k-1) x latency), against the step's host time on a GPU (operations x 8 us,
from ``launches.py``): where the allreduce and the per-step host cost stop the scaling.

    python benchmarks/scaling.py             # JSON into benchmarks/results/
    python benchmarks/scaling.py --quick     # 2,048 images (CI smoke run)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

BANDWIDTH_GBS = {"NVLink 4 (H100/H200, per direction)": 450.0, "InfiniBand NDR 400 Gb/s": 50.0}
LATENCY_US = {"NVLink 4 (H100/H200, per direction)": 5.0, "InfiniBand NDR 400 Gb/s": 10.0}
GPUS = (1, 2, 4, 8, 16, 32, 64)
US_PER_OP = 8.0


def worker(images: int, distributed: bool) -> dict[str, Any]:
    """One epoch in this process (a rank of mpiexec, or alone)."""
    import numpy as np

    from xpnet import models, nn, optim
    from xpnet.datasets import load_mnist
    from xpnet.train import fit

    (x, y), _ = load_mnist(normalize=True)
    x, y = x[:images], y[:images]
    model = models.build("mnist_cnn", seed=0, backend="numpy")
    opt = optim.Adam(model.parameters(), lr=5e-3)
    comm = None
    timing = {"seconds": 0.0, "calls": 0, "bytes": 0}
    if distributed:
        from xpnet import distributed as dist

        comm = dist.init()
        plain = comm.allreduce

        def timed(array: Any) -> Any:
            started = time.perf_counter()
            out = plain(array)
            timing["seconds"] += time.perf_counter() - started
            timing["calls"] += 1
            timing["bytes"] = int(np.asarray(array).nbytes)
            return out

        comm.allreduce = timed  # type: ignore[method-assign]
    history = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=128,
                  progress=False, log=None, distributed=comm)  # fmt: skip
    seconds = history.seconds[0]
    return {
        "rank": 0 if comm is None else comm.rank,
        "epoch_s": seconds,
        "images_per_s": images / seconds,
        "allreduce_ms_per_step": 1e3 * timing["seconds"] / max(timing["calls"], 1),
        "allreduce_bytes": timing["bytes"],
    }


def on_paper() -> dict[str, Any]:
    from launches import measure, xpnet_step
    from xpnet import models
    from xpnet.kernels import use_fast_paths

    table: dict[str, Any] = {}
    for name in models.MODELS:
        params = sum(math.prod(p.shape) for p in models.build(name, backend="numpy").parameters())
        with use_fast_paths(False):
            ops = measure(xpnet_step(name, "adam"))["ops"]
        host_ms = ops * US_PER_OP / 1e3
        rows = {}
        for link, gbs in BANDWIDTH_GBS.items():
            rows[link] = {
                str(k): 0.0 if k == 1 else 1e3 * (2 * (k - 1) / k * 4 * params / (gbs * 1e9)
                                                  + 2 * (k - 1) * LATENCY_US[link] * 1e-6)
                for k in GPUS
            }  # fmt: skip
        table[name] = {"parameters": params, "allreduce_bytes": 4 * params,
                       "step_host_ms": host_ms, "allreduce_ms": rows}  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images", type=int, default=55_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(
            args.images, distributed="PMI_RANK" in os.environ or "PMI_SIZE" in os.environ
        )
        if result["rank"] == 0:
            print(json.dumps(result))
        return 0
    from _common import write_results

    images = 2048 if args.quick else 55_000
    me = [sys.executable, __file__, "--worker", "--images", str(images)]
    bindir = Path(sys.executable).parent
    mpiexec = str(bindir / "mpiexec") if (bindir / "mpiexec").exists() else "mpiexec"
    runs = {
        "1 process x 2 threads": (me, "2"),
        "2 ranks x 1 thread": ([mpiexec, "-n", "2", *me], "1"),
    }
    measured: dict[str, Any] = {}
    for label, (command, threads) in runs.items():
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "NUMBA_NUM_THREADS": threads}  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        if done.returncode != 0:
            print(f"{label}: failed\n{done.stderr[-2000:]}")
            continue
        measured[label] = json.loads(done.stdout.strip().splitlines()[-1])
        row = measured[label]
        print(f"{label:<24} {row['images_per_s']:>8.0f} images/s  epoch {row['epoch_s']:.1f} s  "
              f"allreduce {row['allreduce_ms_per_step']:.2f} ms, {row['allreduce_bytes']} B a step")  # fmt: skip
    paper = on_paper()
    for name, row in paper.items():
        nv = row["allreduce_ms"]["NVLink 4 (H100/H200, per direction)"]
        ib = row["allreduce_ms"]["InfiniBand NDR 400 Gb/s"]
        print(f"{name:<14} {row['allreduce_bytes']:>9} B  host step {row['step_host_ms']:.2f} ms  "
              f"allreduce 8 GPUs NVLink {nv['8']:.3f} ms, 64 GPUs IB {ib['64']:.3f} ms")  # fmt: skip
    payload = {"quick": args.quick, "images": images, "measured": measured, "on_paper": paper}
    path = write_results("scaling", payload, args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
