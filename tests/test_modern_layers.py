"""BatchNorm1d/2d, Residual and AdaptiveAvgPool2d: forward against plain loops in float64,
backward against finite differences and torch autograd (train and eval mode), buffers in
state_dicts and checkpoints, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
from xpnet import functional as F
from xpnet import nn, optim
from xpnet.checkpoint import load_checkpoint, save_checkpoint

from . import reference
from .conftest import relative_error
from .helpers import as_np, numeric_gradient, on

SETTINGS = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOLERANCE = 1e-4


@st.composite
def bn_cases(draw):
    rank = draw(st.sampled_from([2, 3, 4]))
    shape = (draw(st.integers(2, 4)), draw(st.integers(1, 4)))
    shape += tuple(draw(st.integers(1, 4)) for _ in range(rank - 2))
    return shape, draw(st.booleans()), draw(st.integers(0, 2**31 - 1))


def _bn_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    return (
        rng.standard_normal(shape) * 3 + 1,
        rng.standard_normal(channels),
        rng.standard_normal(channels),
        rng.standard_normal(channels),
        rng.random(channels) + 0.5,
    )


@SETTINGS
@given(case=bn_cases())
def test_batch_norm_forward_against_loops(xp, case):
    shape, training, seed = case
    x, w, b, mean, var = _bn_inputs(shape, seed)
    got = F.batch_norm(
        on(xp, x), on(xp, w), on(xp, b), running_mean=on(xp, mean), running_var=on(xp, var),
        training=training,
    )  # fmt: skip
    expected = reference.batch_norm(x, w, b, None if training else mean, None if training else var)
    np.testing.assert_allclose(as_np(got), expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(case=bn_cases())
def test_batch_norm_backward_finite_differences(xp, case):
    shape, training, seed = case
    x, w, b, mean, var = _bn_inputs(shape, seed)
    upstream = np.random.default_rng(seed + 1).standard_normal(shape)

    def loss(values, name):
        args = {"x": x, "w": w, "b": b, name: values}
        out = F.batch_norm(
            on(xp, args["x"]), on(xp, args["w"]), on(xp, args["b"]), running_mean=on(xp, mean),
            running_var=on(xp, var), training=training,
        )  # fmt: skip
        return float(np.sum(as_np(out) * upstream))

    _, saved = F.batch_norm_forward(
        on(xp, x), on(xp, w), on(xp, b), running_mean=on(xp, mean), running_var=on(xp, var),
        training=training,
    )  # fmt: skip
    grads = F.batch_norm_backward(on(xp, upstream), saved)
    for name, value, got in zip(("x", "w", "b"), (x, w, b), grads):
        numeric = numeric_gradient(lambda v, n=name: loss(v, n), value.copy())
        np.testing.assert_allclose(as_np(got), numeric, rtol=1e-5, atol=1e-6, err_msg=name)


def _torch_batch_norm(torch, layer):
    cls = {"BatchNorm2d": torch.nn.BatchNorm2d, "BatchNorm1d": torch.nn.BatchNorm1d}
    twin = cls[type(layer).__name__](
        layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
        track_running_stats=layer.track_running_stats,
    )  # fmt: skip
    twin.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    return twin


@pytest.mark.parametrize(
    ("cls", "shape"),
    [(nn.BatchNorm2d, (6, 3, 5, 4)), (nn.BatchNorm1d, (8, 5)), (nn.BatchNorm1d, (4, 3, 7))],
)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
def test_batch_norm_layers_against_torch(xp, backend, cls, shape, affine, track, rng, record_error, request):  # fmt: skip
    torch = pytest.importorskip("torch")
    layer = cls(shape[1], momentum=0.3, affine=affine, track_running_stats=track, backend=backend)
    if affine:  # not the trivial ones and zeros
        layer.load_state_dict({**layer.state_dict(), "weight": rng.random(shape[1]) + 0.5,
                               "bias": rng.standard_normal(shape[1])})  # fmt: skip
    twin = _torch_batch_norm(torch, layer)
    errors = {}
    for mode in ("train", "train", "eval"):  # two training steps move the running stats
        layer.train(mode == "train")
        twin.train(mode == "train")
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        tx = torch.tensor(x, requires_grad=True)
        expected = twin(tx)
        expected.backward(torch.tensor(g))
        out = layer(on(xp, x, "float32"))
        grad_x = layer.backward(on(xp, g, "float32"))
        errors[f"{mode} out"] = relative_error(out, expected.detach().numpy())
        errors[f"{mode} grad x"] = relative_error(grad_x, tx.grad.numpy())
        if affine:
            errors[f"{mode} grad weight"] = relative_error(layer.weight.grad, twin.weight.grad)
            errors[f"{mode} grad bias"] = relative_error(layer.bias.grad, twin.bias.grad)
            twin.zero_grad()
    theirs = twin.state_dict()
    for name, value in layer.state_dict().items():
        errors[name] = relative_error(value, theirs[name].numpy())
    for name, error in errors.items():
        record_error(error, request.node.name)
        assert error < TOLERANCE, f"{name}: relative error {error:.2e}"
    if track:
        assert int(layer.num_batches_tracked.data) == 2


class TorchResidual:
    """torch's side of ``nn.Residual``: a module with ``block`` and ``shortcut``."""

    def __new__(cls, torch, block, shortcut=None):
        class Residual(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.block = block
                self.shortcut = shortcut

            def forward(self, x):
                return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

        return Residual()


def small_resnet(backend):
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=0, backend=backend),
        nn.BatchNorm2d(4, backend=backend),
        nn.ReLU(),
        nn.Residual(
            nn.Sequential(
                nn.Conv2d(4, 4, 3, padding=1, rng=1, backend=backend),
                nn.BatchNorm2d(4, backend=backend),
                nn.ReLU(),
                nn.Conv2d(4, 4, 3, padding=1, rng=2, backend=backend),
            )
        ),
        nn.Residual(
            nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, rng=3, backend=backend)),
            shortcut=nn.Conv2d(4, 6, 1, stride=2, rng=4, backend=backend),
        ),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.BatchNorm1d(6, backend=backend),
        nn.Linear(6, 3, rng=5, backend=backend),
    )


def torch_small_resnet(torch):
    t = torch.nn
    return t.Sequential(
        t.Conv2d(2, 4, 3, padding=1),
        t.BatchNorm2d(4),
        t.ReLU(),
        TorchResidual(
            torch,
            t.Sequential(
                t.Conv2d(4, 4, 3, padding=1),
                t.BatchNorm2d(4),
                t.ReLU(),
                t.Conv2d(4, 4, 3, padding=1),
            ),
        ),
        TorchResidual(
            torch, t.Sequential(t.Conv2d(4, 6, 3, stride=2, padding=1)), t.Conv2d(4, 6, 1, stride=2)
        ),
        t.AdaptiveAvgPool2d(1),
        t.Flatten(),
        t.BatchNorm1d(6),
        t.Linear(6, 3),
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_residual_net_with_batch_norm_matches_torch(xp, backend, mode, rng, record_error, request):  # fmt: skip
    torch = pytest.importorskip("torch")
    model, twin = small_resnet(backend), torch_small_resnet(torch)
    assert set(model.state_dict()) == set(twin.state_dict())  # the same keys, both ways
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    model.train(mode == "train")
    twin.train(mode == "train")
    x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, size=5)
    crit = nn.CrossEntropyLoss()
    loss = crit(model(on(xp, x, "float32")), on(xp, labels, "int64"))
    grad_x = model.backward(crit.backward())
    tx = torch.tensor(x, requires_grad=True)
    torch_loss = torch.nn.functional.cross_entropy(twin(tx), torch.tensor(labels))
    torch_loss.backward()
    errors = {"loss": relative_error(loss, torch_loss.detach().numpy()),
              "grad x": relative_error(grad_x, tx.grad.numpy())}  # fmt: skip
    theirs = dict(twin.named_parameters())
    for name, param in model.named_parameters():
        errors[name] = relative_error(param.grad, theirs[name].grad.numpy())
    state = twin.state_dict()
    for name, value in model.state_dict().items():  # running stats after one step
        errors[name] = relative_error(value, state[name].numpy())
    for name, error in errors.items():
        record_error(error, request.node.name)
        assert error < TOLERANCE, f"{name}: relative error {error:.2e}"
    # and back: torch's state_dict loads into xpnet
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batch_norm_then_relu_runs_as_one_op_with_the_same_results(xp, backend, mode, rng):
    """``Sequential`` runs a batch norm layer and the ``ReLU`` after it as one op
    (``forward_relu``): the output, the input and parameter gradients and the running
    statistics are those of the layers run one after the other, bit for bit; the ReLU's
    own backward then passes the gradient on unchanged."""

    def layers() -> list[nn.Module]:
        return [
            nn.Conv2d(2, 4, 3, padding=1, rng=0, backend=backend),
            nn.BatchNorm2d(4, backend=backend),
            nn.ReLU(),
            nn.Conv2d(4, 3, 3, rng=1, backend=backend),
        ]

    fused, apart = nn.Sequential(*layers()), layers()
    for module in [fused, *apart]:
        module.train(mode == "train")
    x = on(xp, rng.standard_normal((3, 2, 6, 6)), "float32")
    upstream = on(xp, rng.standard_normal((3, 3, 4, 4)), "float32")
    out = fused(x)
    assert fused.layers[1]._saved.relu_out is not None  # the one-op path ran
    expected = x
    for layer in apart:
        expected = layer(expected)
    np.testing.assert_array_equal(as_np(out), as_np(expected))
    grad = fused.backward(upstream)
    expected_grad = upstream
    for layer in reversed(apart):
        expected_grad = layer.backward(expected_grad)
    np.testing.assert_array_equal(as_np(grad), as_np(expected_grad))
    for (name, param), twin in zip(
        fused.named_parameters(), [p for m in apart for p in m.parameters()]
    ):
        np.testing.assert_array_equal(as_np(param.grad), as_np(twin.grad), err_msg=name)
    state = fused.layers[1].state_dict()
    for name, value in apart[1].state_dict().items():
        np.testing.assert_array_equal(as_np(state[name]), as_np(value), err_msg=name)
    relu = fused.layers[2]
    relu(x)  # called on its own again, the ReLU is a ReLU
    np.testing.assert_array_equal(as_np(relu.backward(x)), np.where(as_np(x) > 0, as_np(x), 0))


@pytest.mark.parametrize(("conv_bias", "affine"), [(False, True), (True, True), (True, False)])
def test_inference_mode_folds_batch_norm_into_the_conv_before_it(xp, backend, conv_bias, affine, rng):  # fmt: skip
    """Inside ``nn.inference_mode`` an eval-mode conv + batch norm pair runs as one conv
    with folded weights and bias: the output equals the layers' to float32 rounding (random
    running statistics, with and without the conv's bias and the norm's affine), neither
    layer keeps anything, so ``backward`` raises naming inference mode; in training mode
    nothing is folded."""
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=conv_bias, rng=0, backend=backend),
        nn.BatchNorm2d(16, affine=affine, backend=backend),
        nn.ReLU(),
        nn.Conv2d(16, 4, 3, stride=2, rng=1, backend=backend),
    )
    norm = model.layers[1]
    norm.running_mean.data = on(xp, rng.standard_normal(16), "float32")
    norm.running_var.data = on(xp, rng.random(16) + 0.5, "float32")
    if affine:
        norm.weight.data = on(xp, rng.standard_normal(16), "float32")
        norm.bias.data = on(xp, rng.standard_normal(16), "float32")
    x = on(xp, rng.standard_normal((2, 3, 9, 9)), "float32")
    model.eval()
    expected = as_np(model(x))
    model.backward(on(xp, np.ones(expected.shape), "float32"))  # eval mode keeps a backward
    with nn.inference_mode():
        folded = model(x)
    assert norm._saved is None and model.layers[0]._saved is None
    np.testing.assert_allclose(as_np(folded), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    with pytest.raises(RuntimeError, match="inference_mode"):
        model.backward(on(xp, np.ones(expected.shape), "float32"))
    model.train()
    with nn.inference_mode():
        model(x)
    assert norm._saved is not None  # training mode: the batch's statistics, not folded
    # a pair that does not fit (8 channels normalised after 16) is not folded: its own error
    mismatched = nn.Sequential(model.layers[0], nn.BatchNorm2d(8, backend=backend)).eval()
    with nn.inference_mode(), pytest.raises(ValueError, match="8"):
        mismatched(x)


@pytest.mark.parametrize("input_grad", [True, False])
def test_relu_then_max_pool_pools_first_with_the_same_results(xp, backend, input_grad, rng):
    """``Sequential`` runs a ``ReLU`` followed by a ``MaxPool2d`` pooling first (the ReLU
    then on the pooled output): the output and gradients are those of the layers one after
    the other, bit for bit, with ties inside windows (values rounded to 0.5), windows all
    negative and odd sides (3x3 windows, stride 2, padding 1)."""

    def layers() -> list[nn.Module]:
        return [
            nn.Conv2d(2, 3, 1, rng=0, backend=backend),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Conv2d(3, 2, 3, rng=1, backend=backend),
        ]

    fused, apart = nn.Sequential(*layers()), layers()
    x = on(xp, np.round(rng.standard_normal((3, 2, 9, 7)) * 2) / 2, "float32")
    out = fused(x)
    assert fused._pooled_first == [1]  # the pool-first path ran
    expected = x
    for layer in apart:
        expected = layer(expected)
    np.testing.assert_array_equal(as_np(out), as_np(expected))
    upstream = on(xp, rng.standard_normal(tuple(out.shape)), "float32")
    grad = fused.backward(upstream, input_grad=input_grad)
    expected_grad = upstream
    for index in range(len(apart) - 1, -1, -1):
        expected_grad = apart[index].backward(expected_grad, input_grad=input_grad or index > 0)
    if input_grad:
        np.testing.assert_array_equal(as_np(grad), as_np(expected_grad))
    else:
        assert grad is None
    for (name, param), twin in zip(
        fused.named_parameters(), [p for m in apart for p in m.parameters()]
    ):
        np.testing.assert_array_equal(as_np(param.grad), as_np(twin.grad), err_msg=name)


def test_residual_backward_sums_both_paths_finite_differences(xp, backend, rng):
    block = nn.Sequential(nn.Linear(3, 3, rng=0, backend=backend, dtype="float64"), nn.Tanh())
    layer = nn.Residual(block, shortcut=nn.Linear(3, 3, rng=1, backend=backend, dtype="float64"))
    x = rng.standard_normal((4, 3))
    upstream = rng.standard_normal((4, 3))
    layer(on(xp, x))
    grad = layer.backward(on(xp, upstream))
    numeric = numeric_gradient(lambda v: float(np.sum(as_np(layer(on(xp, v))) * upstream)), x)
    np.testing.assert_allclose(as_np(grad), numeric, rtol=1e-6, atol=1e-8)
    assert layer.backward(on(xp, upstream), input_grad=False) is None
    assert [n for n, _ in layer.named_parameters()] == [
        "block.0.weight", "block.0.bias", "shortcut.weight", "shortcut.bias"
    ]  # fmt: skip


@pytest.mark.parametrize(("size", "out"), [(1, (1, 1)), (2, (2, 2)), ((3, 1), (3, 1))])
def test_adaptive_avg_pool_against_torch(xp, size, out, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
    layer = nn.AdaptiveAvgPool2d(size)
    got = layer(on(xp, x, "float32"))
    tx = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.adaptive_avg_pool2d(tx, size)
    g = rng.standard_normal(tuple(expected.shape)).astype(np.float32)
    expected.backward(torch.tensor(g))
    assert tuple(got.shape) == (2, 3, *out)
    assert relative_error(got, expected.detach().numpy()) < TOLERANCE
    assert relative_error(layer.backward(on(xp, g, "float32")), tx.grad.numpy()) < TOLERANCE


def test_buffers_in_state_dict_to_and_checkpoints(tmp_path, xp, backend):
    model = small_resnet("numpy")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    buffers = {name for name, _ in model.named_buffers()}
    assert "1.running_mean" in buffers and "3.block.1.num_batches_tracked" in buffers
    assert not buffers & {name for name, _ in model.named_parameters()}
    assert len(opt.params) == len(model.parameters())  # an optimizer never sees buffers
    crit = nn.CrossEntropyLoss()
    x = np.random.default_rng(0).standard_normal((4, 2, 8, 8)).astype(np.float32)
    crit(model(x), np.array([0, 1, 2, 0]))
    model.backward(crit.backward())
    opt.step()
    path = save_checkpoint(tmp_path / "m.npz", model)
    loaded = load_checkpoint(path, backend=backend).model
    for name, value in loaded.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[name], err_msg=name)
    assert all(xpnet.backend_of(b.data) == backend for _, b in loaded.named_buffers())
    model.eval(), loaded.eval()
    np.testing.assert_allclose(as_np(loaded(on(xp, x, "float32"))), model(x), rtol=1e-5, atol=1e-6)
    moved = small_resnet("numpy").to(backend)
    assert all(xpnet.backend_of(b.data) == backend for _, b in moved.named_buffers())


def test_a_nested_spec_round_trips():
    model = small_resnet("numpy")
    rebuilt = nn.from_spec(model.spec())
    assert rebuilt.spec() == model.spec()
    assert set(rebuilt.state_dict()) == set(model.state_dict())


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: nn.BatchNorm2d(0), ValueError, "BatchNorm2d: num_features must be a positive int"),
        (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, r"momentum must be in \[0, 1\]"),
        (lambda: nn.BatchNorm2d(3, eps=-1.0), ValueError, "eps must be a finite number >= 0"),
        (lambda: nn.AdaptiveAvgPool2d(0), ValueError, "output_size must be >= 1"),
        (lambda: nn.Residual(lambda x: x), TypeError, "block must be an xpnet Module"),
    ],
)
def test_constructor_errors(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_forward_errors(xp):
    with pytest.raises(
        ValueError, match=r"BatchNorm2d: x must be 4-D \(N, C, ...\); got shape \(2, 3\)"
    ):
        nn.BatchNorm2d(3, backend="numpy")(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(4,\)"):
        F.batch_norm(xp.ones((2, 4)), running_mean=xp.zeros(3), running_var=xp.ones(3),
                     training=False)  # fmt: skip
    with pytest.raises(ValueError, match="training needs more than one value per channel"):
        F.batch_norm(xp.ones((1, 4)))
    # a string or an array is truthy: it must not be taken as True without a word
    with pytest.raises(TypeError, match="batch_norm: training must be True or False; got 'no'"):
        F.batch_norm(xp.ones((2, 4)), training="no")
    with pytest.raises(TypeError, match="batch_norm: relu must be True or False; got 1"):
        F.batch_norm_forward(xp.ones((2, 4)), relu=1)
    with pytest.raises(ValueError, match="batch_norm: eps must be a finite number >= 0; got -1"):
        F.batch_norm(xp.ones((2, 4)), eps=-1e-5)
    assert F.batch_norm(xp.ones((2, 4)), training=np.bool_(True)).shape == (2, 4)
    with pytest.raises(
        ValueError, match=r"\(H, W\) = \(5, 4\) must be multiples of output_size \(2, 2\)"
    ):
        F.adaptive_avg_pool2d(xp.ones((1, 1, 5, 4)), 2)
    with pytest.raises(ValueError, match=r"Residual: the block's output .* differ in shape"):
        nn.Residual(nn.Flatten())(xp.ones((2, 3, 4)))
