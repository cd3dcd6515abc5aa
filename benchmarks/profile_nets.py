"""Each layer's forward and backward inside the peers' training step (xpnet only).

    python benchmarks/profile_nets.py A|B|R [--steps 15]

The nets and the step are those of ``peer_steps.py`` (batch 128, SGD momentum 0.9, a
0.3 s pause before each timed step); each layer's ``forward`` and ``backward`` is wrapped
by a clock. Prints the median ms of each, then the whole step's. Set ``XPNET_NUMBA=0`` or
``OPENBLAS_CORETYPE`` in the environment to compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_steps
from xpnet import nn, optim


def clock_layers(model: nn.Sequential, times: dict[str, list[float]]) -> None:
    for index, layer in enumerate(model.layers):
        name = f"{index} {type(layer).__name__}"
        forward, backward = layer.forward, layer.backward

        def timed_forward(x, forward=forward, name=name):
            start = time.perf_counter()
            out = forward(x)
            times[f"{name} forward"].append(time.perf_counter() - start)
            return out

        def timed_backward(grad, backward=backward, name=name, **kwargs):
            start = time.perf_counter()
            out = backward(grad, **kwargs)
            times[f"{name} backward"].append(time.perf_counter() - start)
            return out

        layer.forward, layer.backward = timed_forward, timed_backward  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("net", choices=sorted(peer_steps.NETS))
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args(argv)
    model = peer_steps.xpnet_model(peer_steps.NETS[args.net])  # R: a block times as one layer
    opt = optim.SGD(model.parameters(), lr=peer_steps.LR, momentum=peer_steps.MOMENTUM)
    loss = nn.CrossEntropyLoss(check_range=False)
    x, y = peer_steps.batch()
    times: dict[str, list[float]] = defaultdict(list)
    clock_layers(model, times)

    def step() -> None:
        loss(model(x), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()

    for _ in range(3):
        step()
    times.clear()
    whole = []
    for _ in range(args.steps):
        time.sleep(0.3)
        start = time.perf_counter()
        step()
        whole.append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:24s} {statistics.median(values) * 1e3:7.2f} ms")
    print(f"{'whole step':24s} {statistics.median(whole) * 1e3:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
