"""Run under ``mpiexec -n K`` by tests/test_distributed.py: train a small net data-parallel
and write what the test compares (run alone, it is the one-process reference).

    python tests/distributed_worker.py OUT.npz [--net plain|syncbn] [--steps K] [--serial]
        [--resume CKPT] [--raise-at STEP] [--kill-at STEP]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import numpy as np

from xpnet import nn, optim
from xpnet.train import fit


def build(net: str) -> nn.Sequential:
    rng = np.random.default_rng(0)
    # before a BatchNorm a conv bias has no gradient but rounding noise, which Adam would
    # scale up to steps of lr: no bias there, as in the shipped models
    bias = net == "plain"
    layers = [nn.Conv2d(1, 4, 3, padding=1, bias=bias, rng=rng, backend="numpy")]
    if net in ("syncbn", "bn"):  # bn: plain BatchNorm, each rank's own batch statistics
        layers.append(nn.BatchNorm2d(4, backend="numpy"))
    layers += [
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3, rng=rng, backend="numpy"),
    ]
    return nn.Sequential(*layers)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--net", default="plain")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=100)  # 100 = 3 global batches of 32 + 4
    parser.add_argument("--serial", action="store_true", help="one process, no communicator")
    parser.add_argument("--checkpoint")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--raise-at", type=int)
    parser.add_argument("--kill-at", type=int)
    args = parser.parse_args()
    comm = None
    model = build(args.net)
    if not args.serial:
        from xpnet import distributed

        comm = distributed.init()
        if args.net == "syncbn":
            model = distributed.convert_sync_batchnorm(model, comm)
    data = np.random.default_rng(1)
    x = data.standard_normal((args.n, 1, 8, 8)).astype(np.float32)
    y = data.integers(0, 3, args.n)
    opt = optim.Adam(model.parameters(), lr=0.01)
    rank = 0 if comm is None else comm.rank

    def on_step(step: int) -> None:
        if args.raise_at == step and rank == 1:
            raise RuntimeError(f"rank 1 fails at step {step}")
        if args.kill_at == step and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    history = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=args.epochs, batch_size=32,
                  seed=5, progress=False, log=None, on_step=on_step, distributed=comm,
                  checkpoint=args.checkpoint, resume=args.resume)  # fmt: skip
    params = {f"rank{rank}/{k}": v for k, v in model.state_dict().items()}
    params[f"rank{rank}/loss"] = np.array(history.loss)
    params[f"rank{rank}/accuracy"] = np.array(history.accuracy)
    if comm is not None:
        params[f"rank{rank}/allreduce"] = np.array(comm.calls["allreduce"])
    np.savez(f"{args.out}.{rank}.npz", **params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
