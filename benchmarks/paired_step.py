"""The NumPy training step of this tree against another, paired in one run.

Each round runs both trees, each in a fresh process (``PYTHONPATH=<tree>/src``), with both
OpenBLAS kernel sets (the CPU's own, and ``OPENBLAS_CORETYPE=Haswell``), and times
``fit``'s step (``_Run.step``: batch 128 on the device, forward, loss, backward, Adam,
schedule) over random MNIST-sized data: the median of 50 steps after 10 warm-up steps.

    python benchmarks/paired_step.py --before /path/to/old/tree [--rounds 3] [--model NAME]
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(model_name: str) -> float:
    """Median ms of one step in this process (the tree on ``PYTHONPATH``)."""
    import numpy as np

    from xpnet import models, nn, optim
    from xpnet.train import _Run, _Totals

    model = models.build(model_name, seed=0, backend="numpy")
    opt = optim.Adam(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 2048)
    settings = {"batch_size": 128, "augment": None, "checkpoint": None}
    sched = optim.OneCycleLR(opt, 5e-3, 10**4)
    run = _Run(model, nn.CrossEntropyLoss(check_range=False), opt, sched, (x, y), settings)
    # _Totals.start took (xp, device, partial) before the read-back change, (partial) after
    takes_one = len(inspect.signature(_Totals.start).parameters) == 1
    totals = _Totals.start({}) if takes_one else _Totals.start(run.xp, run.device, {})
    read_back = getattr(run, "read_back", None)
    order = rng.permutation(2048)
    times = []
    for i in range(60):
        index = order[(i % 16) * 128 : (i % 16 + 1) * 128]
        started = time.perf_counter()
        run.step(index, totals, i + 1)
        times.append(time.perf_counter() - started)
        if (i + 1) % 20 == 0:
            read_back(0, totals) if read_back else run.check_losses(0)
    return statistics.median(times[10:]) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the other tree (a git worktree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="mnist_cnn")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(child(args.model))
        return 0
    here = Path(__file__).resolve().parents[1]
    trees = {"before": args.before, "after": here}
    print(f"{'round':<7}{'kernels':<9}{'before ms':>11}{'after ms':>10}{'after/before':>14}")
    for round_ in range(1, args.rounds + 1):
        for kernels in ("native", "Haswell"):
            env = {
                k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "PYTHONPATH")
            }
            if kernels == "Haswell":
                env["OPENBLAS_CORETYPE"] = "Haswell"
            ms = {}
            for name, tree in trees.items():
                command = [sys.executable, __file__, "--child", "--model", args.model]
                done = subprocess.run(command, capture_output=True, text=True, check=True,
                                      env={**env, "PYTHONPATH": str(Path(tree) / "src")})  # fmt: skip
                ms[name] = float(done.stdout.strip().splitlines()[-1])
            ratio = ms["after"] / ms["before"]
            print(f"{round_:<7}{kernels:<9}{ms['before']:>11.1f}{ms['after']:>10.1f}{ratio:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
