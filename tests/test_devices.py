"""Arrays on a device that is not the default one stay there: layers, optimizers, ``to()``,
``load_state_dict`` and a resumed ``fit``.

array_api_strict has a second device, ``Device("device1")``, and refuses to mix arrays of
two devices ("Arrays from two different devices"), as CuPy and torch do across GPUs. So a
lost ``device=`` fails here, on the CPU, not first on a GPU. torch's ``meta`` device (shapes
without data) checks the layers' forward and backward never leave the input's device.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import models, nn, optim
from xpnet.checkpoint import save_checkpoint
from xpnet.datasets import load_digits
from xpnet.train import fit

strict = pytest.importorskip("array_api_strict")
DEVICE1 = strict.Device("device1")


def small_net(backend: str = "array_api_strict") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0, backend=backend),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, rng=1, backend=backend),
        nn.Sigmoid(),
        nn.AvgPool2d(2, stride=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Dropout(0.2, seed=0),
        nn.Linear(4 * 1 * 1, 10, rng=2, backend=backend),
    )


def on_device1(array: np.ndarray, dtype: str = "float32"):
    return xpnet.asarray(array, backend="array_api_strict", dtype=dtype, device=DEVICE1)


def test_the_strict_device_guard_is_real():
    with pytest.raises(ValueError, match="different devices"):
        on_device1(np.ones(2)) + strict.ones(2, dtype=strict.float32)


def test_layers_forward_and_backward_stay_on_the_device():
    model = small_net().to("array_api_strict", device=DEVICE1)
    assert all(p.data.device == DEVICE1 for p in model.parameters())
    x = on_device1(np.random.default_rng(0).standard_normal((3, 1, 8, 8)))
    crit = nn.CrossEntropyLoss()
    out = model(x)
    loss = crit(out, on_device1(np.array([1, 2, 3]), "int64"))
    grad_x = model.backward(crit.backward())
    assert out.device == loss.device == grad_x.device == DEVICE1
    assert all(p.grad.device == DEVICE1 for p in model.parameters())
    softmax, mse = nn.Softmax(), nn.MSELoss()
    probs = softmax(out)
    assert softmax.backward(probs).device == DEVICE1
    mse(probs, probs)
    assert mse.backward().device == DEVICE1


@pytest.mark.parametrize(
    "make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9), optim.Adam, optim.AdamW]
)
def test_optimizer_state_survives_a_round_trip_on_the_device(make):
    model = small_net().to("array_api_strict", device=DEVICE1)
    opt = make(model.parameters())
    x = on_device1(np.random.default_rng(1).standard_normal((2, 1, 8, 8)))
    labels = on_device1(np.array([0, 1]), "int64")
    crit = nn.CrossEntropyLoss()
    for _ in range(2):
        crit(model(x), labels)
        model.backward(crit.backward(), input_grad=False)
        opt.step()
        if _ == 0:  # as a resume does: the state goes through NumPy and back
            opt.load_state_dict(opt.state_dict())
    assert all(v.device == DEVICE1 for state in opt.state for v in state.values())
    assert all(p.data.device == DEVICE1 for p in model.parameters())


def test_load_state_dict_keeps_the_device():
    model = small_net().to("array_api_strict", device=DEVICE1)
    model.load_state_dict(small_net("numpy").state_dict())
    assert all(p.data.device == DEVICE1 for p in model.parameters())


def test_a_resumed_fit_trains_on_the_device(tmp_path):
    (x, y), _ = load_digits(seed=0)
    x, y = x[:64], y[:64]
    path = tmp_path / "run.npz"

    def train(epochs: int, resume: bool) -> nn.Module:
        model = models.build("seed_cnn", seed=0, backend="array_api_strict")
        model.layers[0] = nn.Conv2d(1, 8, 3, padding=1, rng=0, backend="array_api_strict")
        model.layers[-1] = nn.Linear(8 * 4 * 4, 10, rng=1, backend="array_api_strict")
        model.to("array_api_strict", device=DEVICE1)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=epochs, batch_size=16,
            checkpoint=path, resume=resume, progress=False, log=None)  # fmt: skip
        return model

    train(1, resume=False)
    model = train(2, resume=True)
    assert all(p.data.device == DEVICE1 for p in model.parameters())


def test_layers_keep_torch_meta_tensors_on_meta():
    torch = pytest.importorskip("torch")
    model = small_net("torch").to("torch", device="meta").eval()  # no random masks on meta
    x = torch.empty((3, 1, 8, 8), device="meta")
    crit = nn.CrossEntropyLoss(check_range=False)  # a range check reads values: none here
    out = model(x)
    crit(out, torch.empty(3, dtype=torch.int64, device="meta"))
    grad_x = model.backward(crit.backward())
    assert out.device.type == grad_x.device.type == "meta"
    assert all(p.grad.device.type == "meta" for p in model.parameters())


def test_save_checkpoint_reads_device_arrays(tmp_path):
    model = small_net().to("array_api_strict", device=DEVICE1)
    save_checkpoint(tmp_path / "m.npz", model)
    assert (tmp_path / "m.npz").exists()
