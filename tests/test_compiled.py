"""``fit(..., compile=True)``: the whole step traced by ``jax.jit`` equals the eager step."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import models, nn, optim
from xpnet.compiled import CompiledStep
from xpnet.train import fit, predict

from .conftest import SELECTED
from .helpers import one_block_resnet

pytestmark = pytest.mark.skipif("jax" not in SELECTED, reason="jax is not selected")
JAX_PART = True  # nox runs this module in the jax backend's process (tests/conftest.py)
jax = pytest.importorskip("jax", reason="jax is not installed: the compiled step is JAX's")


def _batch(seed: int, n: int = 12, shape=(1, 12, 12), classes: int = 10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


NETS = {
    # dropout (a jax.random key threaded through) after conv, ReLU, max-pool and dense layers
    "small_cnn": lambda: models.build("small_cnn", backend="jax", seed=3, image_shape=(1, 12, 12)),
    # batch norm (running statistics and a step counter as buffers) fused with ReLU, in a
    # residual block, then dropout before the dense layer
    "tiny_resnet": lambda: one_block_resnet(4, seed=3, backend="jax", dropout=0.3),
    "tiny_cnn": lambda: nn.Sequential(
        nn.Conv2d(1, 3, 3, rng=3, backend="jax"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(75, 10, rng=3, backend="jax"),
    ),
}
OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    # eps 1e-3: an update linear in tiny gradients; with the default 1e-8 Adam's update of a
    # near-zero gradient is lr * its sign, which a float32 rounding difference can flip
    "adamw": lambda p: optim.AdamW(p, lr=1e-3, eps=1e-3),
}


def _state(model, opt):
    arrays = [p.data for p in model.parameters()]
    arrays += [b.data for _, b in model.named_buffers()]
    arrays += [value for entry in opt.state for _, value in sorted(entry.items())]
    return [np.asarray(xpnet.to_numpy(a), dtype=np.float64) for a in arrays]


def _eager_step(model, loss, opt, x, y):
    logits = model(x)
    model.backward(loss.gradient(logits, y), input_grad=False)
    opt.step()
    return logits


@pytest.mark.parametrize(("net", "opt_name"), [("tiny_resnet", "adamw"), ("tiny_resnet", "sgd")])
def test_compiled_steps_equal_eager_steps(net, opt_name):
    """Three steps (the optimizer's state from zero, then carried): parameters, buffers,
    optimizer state and logits equal the eager steps' to float32 rounding."""
    runs = {}
    for compiled in (False, True):
        model = NETS[net]().train()
        opt = OPTIMIZERS[opt_name](model.parameters())
        loss = nn.CrossEntropyLoss(check_range=False)
        step = CompiledStep(model, loss, opt) if compiled else None
        logits = []
        for seed in range(3):
            x, y = _batch(seed)
            x, y = xpnet.asarray(x, backend="jax"), xpnet.asarray(y, backend="jax")
            if compiled:
                logits.append(step(x, y)[0])
            else:
                logits.append(_eager_step(model, loss, opt, x, y))
        runs[compiled] = (_state(model, opt), [xpnet.to_numpy(v) for v in logits], step)
    (eager, eager_logits, _), (comp, comp_logits, step) = runs[False], runs[True]
    assert step.traces == 1  # one batch shape, one trace: the zero state traced like the rest
    assert len(eager) == len(comp)
    for a, b in zip(eager + eager_logits, comp + comp_logits):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6 * max(1.0, float(np.abs(a).max())))


def test_fit_compiled_traces_once_per_batch_shape_and_leaves_no_tracer(tmp_path):
    x, y = _batch(0, n=50)
    model = NETS["tiny_resnet"]()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.OneCycleLR(opt, 1e-3, 8)  # the learning rate changes every step
    ckpt = tmp_path / "model.npz"
    history = fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=16,
                  compile=True, scheduler=sched, checkpoint=ckpt, progress=False, log=None)  # fmt: skip
    assert len(history.loss) == 2 and all(np.isfinite(history.loss))
    assert opt.step_count == 8
    # batches of 16, 16, 16 and 2: two shapes, two traces over both epochs
    for param in model.parameters():
        assert type(param.data).__module__.startswith("jaxlib") and param.grad is None
    assert all(m._saved is None for m in model.children())
    eager = predict(model, x)  # the layers run eagerly again
    assert eager.shape == (50, 10)
    from xpnet.checkpoint import load_checkpoint

    saved = load_checkpoint(ckpt, backend="numpy")  # portable: trained on JAX, run on NumPy
    np.testing.assert_allclose(predict(saved.model, x), eager, rtol=1e-5, atol=1e-6)


def test_the_step_counts_its_traces():
    model = NETS["tiny_cnn"]()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = CompiledStep(model, nn.CrossEntropyLoss(check_range=False), opt)
    for n in (8, 8, 3, 8, 3):
        x, y = _batch(n, n=n)
        step(xpnet.asarray(x, backend="jax"), xpnet.asarray(y, backend="jax"))
    assert step.traces == 2 and opt.step_count == 5


class _LossWithoutGradient:
    """Cross-entropy through its forward and ``backward`` only (no ``gradient``)."""

    def __init__(self):
        self.inner = nn.CrossEntropyLoss(check_range=False)

    def __call__(self, logits, labels):
        return self.inner(logits, labels)

    def backward(self):
        return self.inner.backward()


def test_a_loss_without_gradient_is_compiled_through_its_backward():
    x, y = _batch(1, n=8)
    results = []
    for compiled in (False, True):
        model = NETS["tiny_cnn"]()
        opt = optim.SGD(model.parameters(), lr=0.1)
        history = fit(model, _LossWithoutGradient(), opt, (x, y), epochs=2, batch_size=4,
                      compile=compiled, progress=False, log=None)  # fmt: skip
        results.append([*history.loss, *(xpnet.to_numpy(p.data) for p in model.parameters())])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


def test_a_failing_trace_leaves_the_model_as_it_was():
    model = NETS["tiny_cnn"]()
    opt = optim.SGD(model.parameters(), lr=0.1)
    before = [xpnet.to_numpy(p.data).copy() for p in model.parameters()]
    step = CompiledStep(model, nn.CrossEntropyLoss(check_range=False), opt)
    x, y = _batch(0, n=4, shape=(1, 2, 2))  # smaller than the 3x3 kernel
    with pytest.raises(ValueError):  # noqa: PT011 (the layer's own message)
        step(xpnet.asarray(x, backend="jax"), xpnet.asarray(y, backend="jax"))
    assert opt.step_count == 0
    for param, old in zip(model.parameters(), before):
        np.testing.assert_array_equal(xpnet.to_numpy(param.data), old)
    x, y = _batch(0, n=4)
    step(xpnet.asarray(x, backend="jax"), xpnet.asarray(y, backend="jax"))  # still usable
