"""ONNX export: every shipped model and random nets of every layer, run in ONNX Runtime
against ``model.forward`` in eval mode; the CLI; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xpnet import models, nn
from xpnet.cli import main
from xpnet.datasets import load_mnist
from xpnet.onnx import ExportError, export, read_metadata

from .helpers import as_np, on

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": images})[0]


def assert_matches(model, path, image_shape, rng):
    """ONNX Runtime's logits equal the model's eval forward at batch 1 and 7."""
    was_training = model.training
    model.eval()
    params = model.parameters()
    for batch in (1, 7):
        images = rng.standard_normal((batch, *image_shape)).astype(np.float32)
        x = images if not params else on_model(model, images)
        expected = as_np(model(x))
        np.testing.assert_allclose(run_onnx(path, images), expected, rtol=1e-5, atol=1e-5)
    model.train(was_training)


def on_model(model, images):
    from xpnet.train import to_model_device

    return to_model_device(model, images)[0]


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_shipped_model_runs_the_same_in_onnx_runtime(xp, backend, name, tmp_path, rng):
    model = models.build(name, seed=3, backend=backend)  # in training mode: exported as eval
    for _, buffer in model.named_buffers():  # BatchNorm: statistics other than 0 and 1
        if "running" in _:
            values = rng.uniform(0.5, 1.5, buffer.shape).astype(np.float32)
            buffer.data = on(xp, values, "float32")
    path = export(model, tmp_path / f"{name}.onnx", input_shape=(1, 28, 28))
    assert model.training  # export changes nothing
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images"] and graph.output[0].name == "logits"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    meta = read_metadata(path)
    assert meta["spec"] == json.loads(json.dumps(model.spec())) and meta["xpnet_version"]
    assert_matches(model, path, (1, 28, 28), rng)


def random_net(rng, channels: int, seed: int) -> nn.Sequential:
    """Conv (random kernel, stride, padding), pooling of both kinds with padding, BatchNorm
    with random running statistics, a residual block with a 1x1 shortcut, activations,
    dropout, global pooling, dense, BatchNorm1d, softmax."""
    k, stride, pad = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    width = int(rng.integers(2, 6))
    layers = [
        nn.Conv2d(
            channels,
            width,
            k,
            stride=stride,
            padding=min(pad, k // 2 + 1),
            rng=seed,
            backend="numpy",
        ),
        nn.BatchNorm2d(width, eps=float(rng.uniform(1e-5, 1e-2)), backend="numpy"),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Residual(
            nn.Sequential(nn.Conv2d(width, 4, 3, padding=1, rng=seed, backend="numpy"), nn.Tanh()),
            nn.Conv2d(width, 4, 1, bias=False, rng=seed + 1, backend="numpy"),
        ),
        nn.AvgPool2d(2, stride=1, padding=1),
        nn.Sigmoid(),
        nn.Dropout(0.3, seed=seed),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 6, rng=seed, backend="numpy"),
        nn.BatchNorm1d(6, backend="numpy"),
        nn.Softmax(axis=1),
    ]
    model = nn.Sequential(*layers)
    for name, buffer in model.named_buffers():
        if "running" in name:
            buffer.data = rng.uniform(0.5, 2.0, buffer.shape).astype(np.float32)
    for param in model.parameters():  # BatchNorm's affine too: not 1 and 0
        param.data = (as_np(param.data) + rng.normal(0, 0.1, param.shape)).astype(np.float32)
    return model


@pytest.mark.parametrize("seed", range(6))
def test_random_nets_of_every_layer(seed, tmp_path):
    rng = np.random.default_rng(seed)
    channels, side = int(rng.integers(1, 4)), int(rng.integers(9, 17))
    model = random_net(rng, channels, seed)
    path = export(model, tmp_path / "net.onnx", input_shape=(channels, side, side), opset=13)
    assert_matches(model, path, (channels, side, side), rng)


class Gate(nn.Module):
    """A user's own layer: no ONNX mapping."""

    def forward(self, x):
        return x


def test_a_layer_without_export_is_named_and_nothing_is_written(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Residual(nn.Sequential(nn.ReLU(), Gate())))
    with pytest.raises(
        ExportError, match=r"layer 1\.block\.1 \(tests\.test_onnx\.Gate\) has no ONNX export"
    ):
        export(model, tmp_path / "m.onnx", input_shape=(1, 4, 4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (28, 28)}, r"input_shape must be \(C, H, W\) or \(N, C, H, W\).*got \(28, 28\)"),
        ({"input_shape": (1, 28, 28), "opset": 11}, r"opset 11 is too old for Flatten \(layer 3\): it needs opset >= 13"),
        ({"input_shape": (1, 28, 28), "opset": 99}, r"opset must be an int in \[7, \d+\]"),
        ({"input_shape": (1, 4, 4)}, r"the exported graph does not check"),  # too small for the net
    ],
    ids=["2-D shape", "old opset", "unknown opset", "shape the net cannot take"],
)  # fmt: skip
def test_bad_shapes_and_opsets(tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        export(models.build("seed_cnn", backend="numpy"), tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_path_is_one_error(tmp_path):
    with pytest.raises(ExportError, match=r"the folder .*missing does not exist"):
        export(models.build("seed_cnn", backend="numpy"), tmp_path / "missing" / "m.onnx",
               input_shape=(1, 28, 28))  # fmt: skip


@pytest.mark.slow
def test_cli_export_gives_the_same_test_accuracy_in_onnx_runtime(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", "seed_cnn", "--epochs", "1", "--limit", "2048", "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    assert main(["evaluate", str(out / "model.npz"), "--limit", "2048"]) == 0
    ours = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["export", str(out / "model.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    _, (images, labels) = load_mnist(normalize=True)
    logits = run_onnx(tmp_path / "m.onnx", images[:2048])
    theirs = f"test_accuracy: {np.mean(logits.argmax(axis=1) == labels[:2048]):.4f}"
    assert theirs == ours


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.npz"), str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["export", "x.npz", "m.onnx", "--input-shape", "a,b"]) == 2
    assert "--input-shape must be C,H,W" in capsys.readouterr().err
