"""One library's training step on one of the two peer nets, timed in this process.

    python benchmarks/peer_steps.py LIBRARY NET [--steps 11] [--warmup 3] [--pause 0.3]

Run by :mod:`peers` inside each library's own virtualenv (so it imports nothing from
xpnet's benchmarks and only NumPy besides the library itself). Prints one JSON object:
the library's version, every timed step (ms), their median, the dtype of the logits and of
every parameter after the steps (all must stay float32), and the BLAS the process loaded.

The two nets, both trained by softmax cross-entropy and SGD (lr 0.01, momentum 0.9) on one
fixed batch of 128 random 1x28x28 images:

- ``A``: xpnet's default model ``mnist_cnn``: conv 1->16 5x5, ReLU, max-pool 2, conv 16->32
  5x5, ReLU, max-pool 2, dense 512->128, ReLU, dense 128->10;
- ``B``: the PyTorch MNIST example's size: conv 1->32 3x3 pad 1, ReLU, max-pool 2, conv
  32->64 3x3 pad 1, ReLU, max-pool 2, dense 3136->128, ReLU, dense 128->10;
- ``R``: xpnet's residual net ``mnist_resnet`` (BatchNorm, two basic blocks), for xpnet
  and PyTorch only (PyTorch's copy is built from xpnet's spec, with the same weights).

A step is forward, backward and the optimizer's update, and ends when the library has
finished it (tinygrad is lazy: its step is realized). Each timed step follows a pause, so
the previous step's BLAS threads are idle, as in ``benchmarks/_common.compare``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 128
LR, MOMENTUM = 0.01, 0.9
THREADS = 2

# (in channels, out channels, kernel, padding) of the two conv layers, and the dense sizes
NETS: dict[str, dict[str, Any]] = {
    "A": {"convs": [(1, 16, 5, 0), (16, 32, 5, 0)], "dense": [512, 128, 10]},
    "B": {"convs": [(1, 32, 3, 1), (32, 64, 3, 1)], "dense": [3136, 128, 10]},
    "R": {"model": "mnist_resnet"},  # xpnet's residual net; xpnet and PyTorch only
}


def only_xpnet_and_torch(net: dict[str, Any]) -> None:
    """Net R is xpnet's model, rebuilt for PyTorch from its spec; no other peer has it."""
    if "model" in net:
        raise NotImplementedError(f"net R ({net['model']}) is built for xpnet and torch only")


def batch(labels_dtype: Any = np.int64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH).astype(labels_dtype)
    return x, y


def sequential(nn: Any, net: dict[str, Any]) -> Any:
    """``net`` as ``nn.Sequential`` of a library whose layers are spelled as PyTorch's
    (``torch.nn`` and ``xpnet.nn``)."""
    layers: list[Any] = []
    for c_in, c_out, k, pad in net["convs"]:
        layers += [nn.Conv2d(c_in, c_out, k, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
    d0, d1, d2 = net["dense"]
    layers += [nn.Flatten(), nn.Linear(d0, d1), nn.ReLU(), nn.Linear(d1, d2)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------------
# One builder per library: returns (version, step, dtypes), where step() runs one training
# step to completion and dtypes() lists the dtype names of the logits and the parameters.
# --------------------------------------------------------------------------------------------


def xpnet_model(net: dict[str, Any]) -> Any:
    """``net`` as an xpnet model: xpnet's own for net R, else :func:`sequential`."""
    from xpnet import models, nn

    return models.build(net["model"], seed=0) if "model" in net else sequential(nn, net)


def xpnet_step(net: dict[str, Any]) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    import xpnet
    from xpnet import nn, optim

    model = xpnet_model(net)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss = nn.CrossEntropyLoss(check_range=False)
    x, y = batch()
    out: list[Any] = []

    def step() -> None:
        logits = model(x)
        loss(logits, y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        out[:] = [logits]

    def dtypes() -> list[str]:
        return [str(out[0].dtype), *(str(p.data.dtype) for p in model.parameters())]

    return xpnet.__version__, step, dtypes


def torch_step(net: dict[str, Any]) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    if "model" in net:  # xpnet's model and weights as torch.nn (benchmarks/mnist.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from mnist import torch_twin
        from xpnet import models

        model = torch_twin(models.build(net["model"], seed=0), "cpu")
    else:
        model = sequential(nn, net)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = (torch.from_numpy(a) for a in batch())
    out: list[Any] = []

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        nn.functional.cross_entropy(logits, y).backward()
        opt.step()
        out[:] = [logits]

    def dtypes() -> list[str]:
        return [str(out[0].dtype), *(str(p.dtype) for p in model.parameters())]

    return torch.__version__, step, dtypes


def chainer_step(net: dict[str, Any]) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    only_xpnet_and_torch(net)
    import chainer
    import chainer.functions as F
    import chainer.links as L

    convs = [L.Convolution2D(c_in, c_out, k, pad=pad) for c_in, c_out, k, pad in net["convs"]]
    d0, d1, d2 = net["dense"]
    model = chainer.ChainList(*convs, L.Linear(d0, d1), L.Linear(d1, d2))

    def forward(x: Any) -> Any:
        for conv in model[: len(convs)]:
            x = F.max_pooling_2d(F.relu(conv(x)), 2, stride=2, cover_all=False)
        x = F.relu(model[len(convs)](F.reshape(x, (x.shape[0], -1))))
        return model[len(convs) + 1](x)

    opt = chainer.optimizers.MomentumSGD(lr=LR, momentum=MOMENTUM)
    opt.setup(model)
    x, y = batch(np.int32)
    out: list[Any] = []

    def step() -> None:
        model.cleargrads()
        logits = forward(x)
        F.softmax_cross_entropy(logits, y).backward()
        opt.update()
        out[:] = [logits]

    def dtypes() -> list[str]:
        return [str(out[0].dtype), *(str(p.array.dtype) for p in model.params())]

    return chainer.__version__, step, dtypes


def dezero_step(net: dict[str, Any]) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    only_xpnet_and_torch(net)
    import dezero
    import dezero.functions as F
    import dezero.layers as L

    class Net(dezero.Model):
        def __init__(self) -> None:
            super().__init__()
            self.convs = []
            for i, (c_in, c_out, k, pad) in enumerate(net["convs"]):
                conv = L.Conv2d(c_out, kernel_size=k, stride=1, pad=pad, in_channels=c_in)
                setattr(self, f"conv{i}", conv)
                self.convs.append(conv)
            d0, d1, d2 = net["dense"]
            self.fc0 = L.Linear(d1, in_size=d0)
            self.fc1 = L.Linear(d2, in_size=d1)

        def forward(self, x: Any) -> Any:
            for conv in self.convs:
                x = F.pooling(F.relu(conv(x)), 2, stride=2)
            x = F.relu(self.fc0(F.reshape(x, (x.shape[0], -1))))
            return self.fc1(x)

    model = Net()
    opt = dezero.optimizers.MomentumSGD(lr=LR, momentum=MOMENTUM).setup(model)
    # int16 labels: int64 ones make DeZero's whole backward float64 (its one-hot is built
    # by arithmetic with the labels' dtype)
    x, y = batch(np.int16)
    out: list[Any] = []

    def step() -> None:
        logits = model(x)
        loss = F.softmax_cross_entropy(logits, y)
        model.cleargrads()
        loss.backward()
        opt.update()
        out[:] = [logits]

    def dtypes() -> list[str]:
        return [str(out[0].data.dtype), *(str(p.data.dtype) for p in model.params())]

    return dezero.__version__, step, dtypes


def tinygrad_step(
    net: dict[str, Any], *, jit: bool
) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    only_xpnet_and_torch(net)
    from importlib.metadata import version

    from tinygrad import Context, Device, Tensor, TinyJit
    from tinygrad import nn as tnn

    assert Device.DEFAULT == "CPU", Device.DEFAULT  # DEV=CPU, set by main()
    convs = [tnn.Conv2d(c_in, c_out, k, padding=pad) for c_in, c_out, k, pad in net["convs"]]
    d0, d1, d2 = net["dense"]
    fc0, fc1 = tnn.Linear(d0, d1), tnn.Linear(d1, d2)
    params = tnn.state.get_parameters([convs, fc0, fc1])
    opt = tnn.optim.SGD(params, lr=LR, momentum=MOMENTUM)
    xs, ys = batch(np.int32)
    x, y = Tensor(xs).realize(), Tensor(ys).realize()

    def train_step(x: Any, y: Any) -> Any:
        with Context(TRAINING=1):
            opt.zero_grad()
            h = x
            for conv in convs:
                h = conv(h).relu().max_pool2d(2)
            logits = fc1(fc0(h.flatten(1)).relu())
            logits.sparse_categorical_crossentropy(y).backward()
            opt.step()
            return logits.realize()

    run = TinyJit(train_step) if jit else train_step
    out: list[Any] = []

    def step() -> None:
        out[:] = [run(x, y)]
        Device[Device.DEFAULT].synchronize()

    def dtypes() -> list[str]:
        return [str(out[0].dtype), *(str(p.dtype) for p in params)]

    return version("tinygrad"), step, dtypes


def keras_step(net: dict[str, Any]) -> tuple[str, Callable[[], Any], Callable[[], list[str]]]:
    only_xpnet_and_torch(net)
    import keras
    from keras import layers

    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(THREADS)
    keras.config.set_image_data_format("channels_first")
    stack: list[Any] = [keras.Input((1, 28, 28))]
    for _, c_out, k, pad in net["convs"]:
        padding = "same" if pad else "valid"
        stack += [layers.Conv2D(c_out, k, padding=padding, activation="relu")]
        stack += [layers.MaxPooling2D(2)]
    _, d1, d2 = net["dense"]
    stack += [layers.Flatten(), layers.Dense(d1, activation="relu"), layers.Dense(d2)]
    model = keras.Sequential(stack)
    model.compile(
        optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    x, y = batch()
    out: list[Any] = []

    def step() -> None:
        model.train_on_batch(x, y)
        out[:] = [model.predict_on_batch(x[:1])]

    def dtypes() -> list[str]:
        return [str(out[0].dtype), *(str(w.dtype) for w in model.get_weights())]

    return keras.__version__, step, dtypes


BUILDERS: dict[str, Callable[..., tuple[str, Callable[[], Any], Callable[[], list[str]]]]] = {
    "xpnet": xpnet_step,
    "xpnet-no-numba": xpnet_step,  # run with XPNET_NUMBA=0 by peers.py
    "xpnet-before": xpnet_step,  # an older source tree's xpnet (peers.py --before)
    "torch": torch_step,
    "chainer": chainer_step,
    "dezero": dezero_step,
    "tinygrad": lambda net: tinygrad_step(net, jit=False),
    "tinygrad-jit": lambda net: tinygrad_step(net, jit=True),
    "keras-torch": keras_step,
    "keras-numpy": keras_step,
}


def blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "num_threads", "architecture", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info()]


def installed_version(library: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(library.split("-")[0])
    except PackageNotFoundError:
        return "-"


def measure(library: str, net_name: str, steps: int, warmup: int, pause_s: float) -> dict:
    result: dict[str, Any] = {"library": library, "net": net_name}
    version, step, dtypes = BUILDERS[library](NETS[net_name])
    result["version"] = version
    start = time.perf_counter()
    step()  # the first step (tinygrad compiles its kernels here)
    result["first_step_s"] = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        time.sleep(pause_s)
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    result.update(
        times_ms=times,
        median_ms=statistics.median(times),
        dtypes=sorted(set(dtypes())),
        blas=blas_info(),
    )
    if library.startswith("xpnet"):  # which source tree ran (peers.py --before)
        import xpnet

        result["source"] = str(Path(xpnet.__file__).parent)
    if library.startswith("keras"):
        import keras

        result["keras_backend"] = keras.backend.backend()
    if library in ("torch", "keras-torch"):
        import torch

        result["torch_threads"] = torch.get_num_threads()
        result["torch_mkldnn"] = torch.backends.mkldnn.is_available()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", choices=sorted(BUILDERS))
    parser.add_argument("net", choices=sorted(NETS))
    parser.add_argument("--steps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.3)
    args = parser.parse_args(argv)
    if args.library.startswith("keras"):
        os.environ["KERAS_BACKEND"] = args.library.split("-")[1]
    if args.library.startswith("tinygrad"):  # its CPU device (clang), on 2 threads as all
        os.environ.setdefault("NUM_CPU_THREADS", str(THREADS))
        os.environ["DEV"] = "CPU"
    try:
        result = measure(args.library, args.net, args.steps, args.warmup, args.pause)
    except Exception as error:  # a library that cannot train this net: say how it failed
        result = {
            "library": args.library,
            "net": args.net,
            "version": installed_version(args.library),
            "error": f"{type(error).__name__}: {error}".splitlines()[0][:300],
        }
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
