"""JAX's own autodiff as a second, independent reference for every hand-written backward.

``jax.vjp`` differentiates each layer's (and loss's) *forward* code, traced on JAX arrays;
the layer's ``backward`` must give the same input and parameter gradients. The forward is
the only thing the two share, so a mistake in a backward (a wrong index, a missing term)
shows here as it does against PyTorch, on random shapes, strides and paddings, in float64.
Both sides run under ``jax.jit`` (the eager JAX run of the same code is what the other
test files check on the ``jax`` backend).
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import functional as F
from xpnet import models, nn
from xpnet.compiled import _random_sources

from .conftest import SELECTED
from .helpers import one_block_resnet

pytestmark = pytest.mark.skipif("jax" not in SELECTED, reason="jax is not selected")
JAX_PART = True  # nox runs this module in the jax backend's process (tests/conftest.py)
jax = pytest.importorskip("jax", reason="jax is not installed")
jnp = jax.numpy
RTOL = 1e-9  # float64 both ways; only the order of the sums differs


def _random_window(rng: np.random.Generator, *, pool: bool) -> dict:
    """A random kernel, stride and padding (PyTorch's pool rule: padding <= kernel // 2)."""
    kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
    stride = tuple(int(s) for s in rng.integers(1, 4, 2))
    padding = tuple(int(rng.integers(0, (k // 2 if pool else 2) + 1)) for k in kernel)
    return {"kernel_size": kernel, "stride": stride, "padding": padding}


def _layers(rng: np.random.Generator, case: int) -> dict[str, tuple[nn.Module, tuple]]:
    """Each layer with a random configuration and an input shape it accepts."""
    conv, mx, avg = (_random_window(rng, pool=p) for p in (False, True, True))
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = (int(s) for s in rng.integers(5, 10, 2))
    image = (n, c, h, w)
    out = int(rng.integers(1, 4))  # adaptive pooling: sides that are multiples of it
    return {
        "conv": (
            nn.Conv2d(c, 3, **conv, bias=case % 2 == 0, rng=case, backend="jax", dtype="float64"),
            image,
        ),
        "linear": (nn.Linear(7, 4, rng=case, backend="jax", dtype="float64"), (n, 7)),
        "max_pool": (nn.MaxPool2d(**mx), image),
        "avg_pool": (nn.AvgPool2d(**avg), image),
        "adaptive_avg_pool": (nn.AdaptiveAvgPool2d(out), (n, c, 2 * out, 3 * out)),
        "relu": (nn.ReLU(), image),
        "sigmoid": (nn.Sigmoid(), image),
        "tanh": (nn.Tanh(), image),
        "softmax": (nn.Softmax(axis=1), (n, 7)),
        "flatten": (nn.Flatten(), image),
        "dropout": (nn.Dropout(0.4, seed=case), image),
        "batch_norm_2d": (nn.BatchNorm2d(c, backend="jax", dtype="float64"), (n + 1, c, h, w)),
        "batch_norm_1d": (nn.BatchNorm1d(7, backend="jax", dtype="float64"), (n + 1, 7)),
    }


def _snapshot(module: nn.Module) -> list:
    """What a forward changes besides its output: buffers, random keys, saved state."""
    buffers = [b for _, b in module.named_buffers()]
    sources = _random_sources(module)
    return [(b, b.data) for b in buffers] + [(s, s.jax_key) for s in sources]


def _restore(snapshot: list) -> None:
    for owner, value in snapshot:
        if isinstance(owner, nn.Buffer):
            owner.data = value
        else:
            owner.jax_key = value


def _traced(module: nn.Module, function):
    """``function(x, upstream, *weights)`` compiled by ``jax.jit`` with the weights put into
    ``module``'s parameters while it traces; everything the trace changed is put back.
    Compiled, each check is two XLA programs instead of an eager compile per operation."""
    params = module.parameters()
    values = [p.data for p in params]

    def pure(x, upstream, *weights):
        for param, value in zip(params, weights):
            param.data = value
        return function(x, upstream)

    def run(x, upstream):
        before = _snapshot(module)
        try:
            return jax.jit(pure)(x, upstream, *values)
        finally:  # the concrete arrays back, and the state the traced forward changed
            for param, value in zip(params, values):
                param.data = value
                param.grad = None
            _restore(before)
            for m in module.modules():
                m._saved = None

    return run


def _assert_backward_equals_vjp(module: nn.Module, x, rng: np.random.Generator) -> None:
    shape = _traced(module, lambda x, upstream: module(x))(x, x).shape
    upstream = jnp.asarray(rng.standard_normal(tuple(shape)))
    params = module.parameters()

    def reference(x, upstream):  # autodiff of the forward, with the weights as inputs
        def forward(x, *weights):
            for param, value in zip(params, weights):
                param.data = value
            return module(x)

        out, pullback = jax.vjp(forward, x, *(p.data for p in params))
        return out, pullback(upstream)

    def hand_written(x, upstream):  # forward, then the layers' own backward
        out = module(x)
        grad_x = module.backward(upstream)
        return out, (grad_x, *(p.grad for p in params))

    out_ref, grads = _traced(module, reference)(x, upstream)
    out, actual = _traced(module, hand_written)(x, upstream)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out_ref), rtol=RTOL, atol=1e-12)
    assert len(actual) == len(grads) == 1 + len(params)
    for got, want in zip(actual, grads):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=1e-12)


MODAL = ("dropout", "batch_norm_2d", "batch_norm_1d")  # train and eval differ
CASES = [
    (name, mode)
    for name in _layers(np.random.default_rng(0), 0)
    for mode in (("train", "eval") if name in MODAL else ("train",))
]


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_each_layer_backward_equals_jax_vjp_of_its_forward(name, mode):
    for case in range(2):  # two random configurations each
        rng = np.random.default_rng([case, len(name)])
        layer, shape = _layers(rng, case)[name]
        layer.train(mode == "train")
        x = jnp.asarray(rng.standard_normal(shape))
        _assert_backward_equals_vjp(layer, x, rng)


@pytest.mark.parametrize("name", ["residual", "small_cnn", "seed_cnn"])
def test_a_whole_model_backward_equals_jax_vjp(name):
    """Residual blocks, batch norm fused with ReLU, pooling after ReLU reordered, dropout:
    the model's backward, as ``fit`` runs it, against autodiff of its forward."""
    rng = np.random.default_rng(1)
    if name == "residual":
        model = one_block_resnet(3, seed=4, backend="jax")
    else:
        model = models.build(name, backend="jax", seed=2, image_shape=(1, 10, 10))
    model = model.to("jax", dtype="float64")
    x = jnp.asarray(rng.standard_normal((3, 1, 10, 10)))
    _assert_backward_equals_vjp(model.train(), x, rng)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_losses_backward_equal_jax_vjp(reduction):
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.standard_normal((5, 4)))
    labels = jnp.asarray(rng.integers(0, 4, 5))
    scale = 1.0 if reduction == "mean" else 5.0
    cases = {
        "cross_entropy": (
            lambda z: F.cross_entropy_forward(z, labels)[0] * scale,
            lambda z: F.cross_entropy_backward(scale, F.cross_entropy_forward(z, labels)[1]),
        ),
        "mse": (
            lambda z: F.mse_loss_forward(z, logits[::-1, :])[0] * scale,
            lambda z: F.mse_loss_backward(scale, F.mse_loss_forward(z, logits[::-1, :])[1]),
        ),
        "log_softmax": (
            lambda z: jnp.sum(F.log_softmax(z, axis=1) * logits) * scale,
            lambda z: F.log_softmax_backward(
                logits * scale, F.log_softmax_forward(z, axis=1)[1], axis=1
            ),
        ),
    }
    z = jnp.asarray(rng.standard_normal((5, 4)))
    for name, (value, hand_written) in cases.items():
        expected = jax.grad(value)(z)
        np.testing.assert_allclose(np.asarray(hand_written(z)), np.asarray(expected),
                                   rtol=RTOL, atol=1e-12, err_msg=name)  # fmt: skip
    assert xpnet.backend_of(z) == "jax"
