"""Layers: backward against PyTorch autograd, a whole CNN against torch.nn, and the plumbing."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import nn

from .conftest import relative_error
from .helpers import as_np, on

TOLERANCE = 1e-4


def small_cnn(backend: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0, backend=backend),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, (3, 2), stride=(1, 2), rng=1, backend=backend),
        nn.Tanh(),
        nn.AvgPool2d(2, stride=1, padding=1),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Dropout(0.3, seed=5),
        nn.Linear(6 * 3 * 3, 10, rng=2, backend=backend),
    )


def torch_twin(torch):
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 4, 3, padding=1),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(4, 6, (3, 2), stride=(1, 2)),
        tnn.Tanh(),
        tnn.AvgPool2d(2, stride=1, padding=1),
        tnn.Sigmoid(),
        tnn.Flatten(),
        tnn.Dropout(0.3),
        tnn.Linear(6 * 3 * 3, 10),
    )


def test_sequential_cnn_matches_torch(xp, backend, rng, record_error, request):
    torch = pytest.importorskip("torch")
    model = small_cnn(backend).eval()
    reference = torch_twin(torch).eval()
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, size=5)

    crit = nn.CrossEntropyLoss()
    loss = crit(model(on(xp, x, "float32")), on(xp, labels, "int64"))
    model.backward(crit.backward())

    torch_loss = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(labels))
    torch_loss.backward()
    errors = {"loss": relative_error(loss, torch_loss.detach().numpy())}
    torch_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        errors[name] = relative_error(param.grad, torch_params[name].grad.numpy())
    for name, error in errors.items():
        record_error(error, request.node.name)
        assert error < TOLERANCE, f"{name}: relative error {error:.2e}"
    assert len(errors) == 1 + 6


@pytest.mark.parametrize(
    "layer_name", ["conv", "linear", "max", "avg", "relu", "sigmoid", "tanh", "softmax", "flatten"]
)
def test_each_layer_backward_matches_torch(xp, backend, rng, layer_name, record_error, request):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    layers = {
        "conv": (
            nn.Conv2d(3, 5, 3, stride=2, padding=2, rng=3, backend=backend),
            tnn.Conv2d(3, 5, 3, stride=2, padding=2),
        ),
        "linear": (nn.Linear(7, 4, rng=4, backend=backend), tnn.Linear(7, 4)),
        "max": (nn.MaxPool2d(3, stride=2, padding=1), tnn.MaxPool2d(3, stride=2, padding=1)),
        "avg": (nn.AvgPool2d((2, 3), stride=(1, 2)), tnn.AvgPool2d((2, 3), stride=(1, 2))),
        "relu": (nn.ReLU(), tnn.ReLU()),
        "sigmoid": (nn.Sigmoid(), tnn.Sigmoid()),
        "tanh": (nn.Tanh(), tnn.Tanh()),
        "softmax": (nn.Softmax(axis=1), tnn.Softmax(dim=1)),
        "flatten": (nn.Flatten(), tnn.Flatten()),
    }
    ours, theirs = layers[layer_name]
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    shape = (2, 7) if layer_name == "linear" else (2, 3, 7, 6)
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    t_out = theirs(tx)
    upstream = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    t_out.backward(torch.tensor(upstream))
    out = ours(on(xp, x, "float32"))
    grad_x = ours.backward(on(xp, upstream, "float32"))
    pairs = [(out, t_out.detach().numpy()), (grad_x, tx.grad.numpy())]
    pairs += [
        (p.grad, dict(theirs.named_parameters())[n].grad.numpy())
        for n, p in ours.named_parameters()
    ]
    for actual, expected in pairs:
        error = relative_error(actual, expected)
        record_error(error, request.node.name)
        assert error < TOLERANCE


def test_parameters_order_and_state_dict_round_trip(xp, backend):
    model = small_cnn(backend)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias", "9.weight", "9.bias"]
    assert len(model.parameters()) == 6
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in state.values())
    other = small_cnn(backend)
    other.load_state_dict({k: v * 2 for k, v in state.items()})
    np.testing.assert_array_equal(as_np(other[0].weight.data), state["0.weight"] * 2)
    assert xpnet.backend_of(other[0].weight.data) == backend


def test_load_state_dict_rejects_wrong_keys_and_shapes(xp, backend):
    model = small_cnn(backend)
    state = model.state_dict()
    with pytest.raises(KeyError, match=r"missing keys \['9.bias'\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "9.bias"})
    bad = dict(state, **{"0.weight": np.zeros((1, 1, 1, 1), np.float32)})
    with pytest.raises(
        ValueError, match=r"0.weight must have shape \(4, 1, 3, 3\); got \(1, 1, 1, 1\)"
    ):
        model.load_state_dict(bad)


def test_to_moves_parameters_between_backends(xp, backend):
    model = small_cnn("numpy").to(backend)
    assert {xpnet.backend_of(p.data) for p in model.parameters()} == {backend}
    out = model.eval()(on(xp, np.ones((1, 1, 8, 8)), "float32"))
    assert xpnet.backend_of(out) == backend
    back = model.to("numpy")
    np.testing.assert_array_equal(back[0].weight.data, small_cnn("numpy")[0].weight.data)


def test_same_seed_same_weights_on_every_backend(xp, backend):
    ours = nn.Conv2d(2, 3, 3, rng=42, backend=backend)
    ref = nn.Conv2d(2, 3, 3, rng=42, backend="numpy")
    np.testing.assert_array_equal(as_np(ours.weight.data), ref.weight.data)
    bound = 1 / np.sqrt(2 * 9)
    assert np.all(np.abs(ref.weight.data) <= bound)
    assert np.all(np.abs(ref.bias.data) <= bound)


def test_dropout_train_and_eval(xp, backend):
    layer = nn.Dropout(0.25, seed=3)
    x = on(xp, np.ones((200, 50)), "float32")
    out = as_np(layer(x))
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    grad = as_np(layer.backward(on(xp, np.ones((200, 50)), "float32")))
    np.testing.assert_array_equal(grad != 0, kept)
    layer.eval()
    np.testing.assert_array_equal(as_np(layer(x)), 1.0)
    assert xpnet.backend_of(layer(x)) == backend


def test_train_eval_propagate_to_children():
    model = small_cnn("numpy").eval()
    assert not any(layer.training for layer in model.layers)
    model.train()
    assert all(layer.training for layer in model.layers)


@pytest.mark.parametrize(
    "layer",
    [
        nn.Conv2d(1, 1, 1, backend="numpy"),
        nn.Linear(1, 1, backend="numpy"),
        nn.MaxPool2d(1),
        nn.AvgPool2d(1),
        nn.ReLU(),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.Softmax(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Dropout(0.5).eval(),
    ],
    ids=lambda layer: repr(layer),
)
def test_backward_before_forward_is_a_clear_error(layer):
    name = type(layer).__name__
    with pytest.raises(RuntimeError, match=rf"{name}\.backward called before forward"):
        layer.backward(np.ones((1, 1, 1, 1), np.float32))


def test_loss_backward_before_forward_is_a_clear_error():
    for loss in (nn.CrossEntropyLoss(), nn.MSELoss()):
        with pytest.raises(RuntimeError, match=rf"{type(loss).__name__}\.backward called before"):
            loss.backward()


def test_a_users_layer_never_shadows_a_built_in_one(tmp_path):
    from xpnet.checkpoint import load_checkpoint, save_checkpoint

    class Linear(nn.Module):  # the same class name as xpnet's own
        def forward(self, x):
            return x

    assert nn.Module.registry["Linear"] is nn.Linear
    assert Linear.type_name() == f"{__name__}.{Linear.__qualname__}"
    assert nn.Module.registry[Linear.type_name()] is Linear
    model = nn.Sequential(nn.Linear(2, 3, backend="numpy"), Linear())
    rebuilt = nn.from_spec(model.spec())
    assert type(rebuilt[0]) is nn.Linear and type(rebuilt[1]) is Linear
    save_checkpoint(tmp_path / "m.npz", model)
    assert type(load_checkpoint(tmp_path / "m.npz").model[1]) is Linear


def test_an_unknown_layer_in_a_spec_or_checkpoint_is_a_clear_error():
    with pytest.raises(
        ValueError,
        match=r"unknown layer type 'mypackage.Gate': import the module that defines it first.*"
        r"xpnet's layers: AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d",
    ):
        nn.from_spec({"type": "mypackage.Gate", "config": {}})


def test_from_spec_passes_backend_only_to_layers_that_take_it():
    class Shift(nn.Module):
        def __init__(self, by: float = 1.0) -> None:
            super().__init__()
            backend = "a local variable, not a parameter"  # noqa: F841
            self.by = by

        def config(self):
            return {"by": self.by}

    layer = nn.from_spec(Shift(2.0).spec(), backend="numpy")
    assert isinstance(layer, Shift) and layer.by == 2.0


def test_mse_loss_layer(xp, rng):
    crit = nn.MSELoss()
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    loss = crit(on(xp, a), on(xp, b))
    np.testing.assert_allclose(float(loss), np.mean((a - b) ** 2))
    np.testing.assert_allclose(as_np(crit.backward()), 2 * (a - b) / 6)


def test_repr_is_readable():
    text = repr(small_cnn("numpy"))
    assert "(0): Conv2d(in_channels=1, out_channels=4, kernel_size=(3, 3)" in text
    assert "(9): Linear(in_features=54, out_features=10, bias=True)" in text


def test_backward_without_input_grad_skips_only_the_input_gradient(xp, backend, rng):
    """``input_grad=False``: same parameter gradients, ``None`` back, and the layers in
    front of the first layer with parameters are not run backward at all."""
    model = nn.Sequential(
        nn.ReLU(),  # nothing to learn in front: skipped
        nn.Conv2d(2, 3, 3, padding=1, rng=0, backend=backend),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 5 * 5, 4, rng=1, backend=backend),
    )
    x = on(xp, rng.standard_normal((2, 2, 5, 5)), "float32")
    labels = on(xp, rng.integers(0, 4, size=2), "int64")
    crit = nn.CrossEntropyLoss()
    crit(model(x), labels)
    grad_x = model.backward(crit.backward())
    full = {name: as_np(p.grad) for name, p in model.named_parameters()}
    model.zero_grad()
    model.layers[0].backward = None  # would fail if it were called
    assert model.backward(crit.backward(), input_grad=False) is None
    for name, param in model.named_parameters():
        np.testing.assert_array_equal(as_np(param.grad), full[name], err_msg=name)
    assert grad_x.shape == x.shape
    assert model.layers[1].backward(model.layers[2]._saved, input_grad=False) is None


def test_backward_without_input_grad_on_a_model_without_parameters(xp):
    model = nn.Sequential(nn.ReLU(), nn.Flatten())
    out = model(xp.ones((2, 3)))
    assert model.backward(xp.ones(out.shape), input_grad=False) is None


def test_a_float32_training_step_stays_float32(xp, backend, rng):
    """No float64 temporaries sneak in (they would double the memory traffic)."""
    from xpnet import models, optim

    model = models.mnist_cnn(seed=0, backend=backend)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    x = on(xp, rng.standard_normal((4, 1, 28, 28)), "float32")
    dtypes = set()
    h = x
    for layer in model.layers:
        h = layer(h)
        dtypes.add(h.dtype)
    loss = crit(h, on(xp, rng.integers(0, 10, size=4), "int64"))
    grad = crit.backward()
    for layer in reversed(model.layers[1:]):
        grad = layer.backward(grad)
        dtypes.add(grad.dtype)
    model.layers[0].backward(grad, input_grad=False)
    opt.step()
    dtypes |= {p.grad.dtype for p in model.parameters()} | {
        p.data.dtype for p in model.parameters()
    }
    dtypes |= {v.dtype for state in opt.state for v in state.values() if hasattr(v, "dtype")}
    assert all(d == xp.float32 for d in dtypes) and loss.dtype == xp.float32, dtypes


def test_a_users_layers_follow_the_base_backward_signature(xp, backend, rng):
    """A user's layer with a parameter takes ``input_grad`` like every layer (the base
    signature); one without parameters may keep the one-argument ``backward``."""

    class Scale(nn.Module):
        param_names = ("weight",)

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(xp.ones((3,)))

        def forward(self, x):
            self._saved = x
            return x * self.weight.data

        def backward(self, grad_out, *, input_grad=True):
            self.weight.grad = xp.sum(grad_out * self._take_saved(), axis=0)
            return grad_out * self.weight.data if input_grad else None

    class Double(nn.Module):  # no parameters, one-argument backward
        def forward(self, x):
            return 2 * x

        def backward(self, grad_out):
            return 2 * grad_out

    model = nn.Sequential(
        Double(), Scale(), Double(), nn.Linear(3, 2, rng=0, backend=backend, dtype="float64")
    )
    out = model(on(xp, rng.standard_normal((4, 3))))
    assert model.backward(xp.ones(out.shape, dtype=out.dtype), input_grad=False) is None
    assert model.layers[1].weight.grad.shape == (3,)
    assert model.backward(xp.ones(out.shape, dtype=out.dtype)).shape == (4, 3)


def test_state_shapes_from_a_config_equal_the_built_layers():
    """What a checkpoint is checked against before building equals what building makes."""
    from xpnet import models

    layers = [nn.Conv2d(3, 5, (2, 3), padding=1, bias=False), nn.Linear(7, 4),
              nn.BatchNorm2d(6, affine=False), nn.BatchNorm1d(3, track_running_stats=False),
              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]  # fmt: skip
    for name in models.MODELS:
        layers += _leaves(models.build(name, backend="numpy"))
    for layer in layers:
        own = {k: v.shape for k, v in layer._state_entries().items() if "." not in k}
        assert type(layer).state_shapes(layer.config()) == own, layer


def _leaves(module):
    children = module.children()
    return [module] if not children else [leaf for c in children for leaf in _leaves(c)]


def test_modules_walks_every_layer_depth_first():
    block = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, rng=0), nn.ReLU())
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.Residual(block), nn.Flatten())
    names = [type(m).__name__ for m in model.modules()]
    assert names == ["Sequential", "Conv2d", "Residual", "Sequential", "Conv2d", "ReLU", "Flatten"]
