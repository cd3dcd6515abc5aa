"""fit/evaluate/predict: on-device batching, reproducibility, checkpoints, resume, NaN stop."""

from __future__ import annotations

import importlib.util
import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet import models, nn, optim
from xpnet.checkpoint import load_checkpoint, save_checkpoint
from xpnet.datasets import load_digits
from xpnet.train import TrainingDiverged, evaluate, fit, predict


class Recorder(nn.Linear):
    """A Linear layer that remembers the backend and first feature of every batch it sees."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list = []

    def forward(self, x):
        self.seen.append((xpnet.backend_of(x), xpnet.to_numpy(x[:, 0]).copy()))
        return super().forward(x)


def digits_model(backend: str, seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, rng=rng, backend=backend),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10, rng=rng, backend=backend),
    )


def quiet_fit(model, data, *, optimizer=None, **kwargs):
    """``fit`` with cross-entropy, SGD (lr 0.1) unless ``optimizer``, no bar, no log."""
    optimizer = optimizer or optim.SGD(model.parameters(), lr=0.1)
    options = {"epochs": 1, "progress": False, "log": None, **kwargs}
    return fit(model, nn.CrossEntropyLoss(), optimizer, data, **options)


@pytest.fixture(scope="module")
def digits():
    (x, y), (xt, yt) = load_digits(seed=0)
    return (x[:600], y[:600]), (xt[:200], yt[:200])


def test_batches_cover_the_data_once_per_epoch_on_device(xp, backend):
    n = 50
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n) % 4
    layer = Recorder(3, 4, rng=0, backend=backend)
    fit(
        nn.Sequential(layer),
        nn.CrossEntropyLoss(),
        optim.SGD(layer.parameters(), lr=0.0),
        (x, y),
        epochs=2,
        batch_size=16,
        progress=False,
        log=None,
    )
    assert {b for b, _ in layer.seen} == {backend}
    assert [len(v) for _, v in layer.seen] == [16, 16, 16, 2] * 2
    first = np.concatenate([v for _, v in layer.seen[:4]])
    second = np.concatenate([v for _, v in layer.seen[4:]])
    np.testing.assert_array_equal(np.sort(first), np.arange(n))
    np.testing.assert_array_equal(np.sort(second), np.arange(n))
    assert not np.array_equal(first, second), "each epoch draws a new permutation"
    assert not np.array_equal(first, np.arange(n)), "batches are shuffled"


def test_training_learns_and_is_reproducible(xp, backend, digits):
    def run():
        model = digits_model(backend)
        opt = optim.Adam(model.parameters(), lr=0.01)
        history = fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            digits[0],
            epochs=3,
            batch_size=32,
            val=digits[1],
            seed=7,
            progress=False,
            log=None,
        )
        return model, history

    model_a, hist_a = run()
    model_b, hist_b = run()
    assert hist_a.loss == hist_b.loss, "same seed, same backend: same losses to the last digit"
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        np.testing.assert_array_equal(xpnet.to_numpy(pa.data), xpnet.to_numpy(pb.data))
    assert hist_a.loss[-1] < hist_a.loss[0]
    assert hist_a.val_accuracy[-1] > 0.8
    assert len(hist_a.seconds) == len(hist_a.lr) == 3
    metrics = evaluate(model_a, *digits[1])
    assert metrics["accuracy"] == pytest.approx(hist_a.val_accuracy[-1])
    probs = predict(model_a, digits[1][0])
    assert probs.shape == (200, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_summary_line_per_epoch(digits):
    lines: list[str] = []
    model = digits_model("numpy")
    quiet_fit(model, digits[0], epochs=2, batch_size=64, val=digits[1], log=lines.append)
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2  loss ")
    assert "val_acc" in lines[1]


def test_checkpoint_is_portable_across_backends(tmp_path, xp, backend, digits):
    model = digits_model("numpy")
    quiet_fit(model, digits[0], optimizer=optim.Adam(model.parameters(), lr=0.01), batch_size=32)
    path = save_checkpoint(tmp_path / "m.npz", model, state={"note": "x"})
    loaded = load_checkpoint(path, backend=backend)
    assert xpnet.backend_of(loaded.model.parameters()[0].data) == backend
    assert loaded.state == {"note": "x"}
    ours, theirs = predict(model, digits[1][0]), predict(loaded.model, digits[1][0])
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(theirs.argmax(1), ours.argmax(1))
    assert evaluate(loaded.model, *digits[1]) == pytest.approx(evaluate(model, *digits[1]))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = digits_model("numpy")
    path = save_checkpoint(tmp_path / "m.npz", model)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, digits_model("numpy", seed=1))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_checkpoints_and_onnx_files_follow_the_umask(tmp_path, umask):
    """Written through a private temporary file, they end with the mode any new file gets
    (0666 less the umask), as metrics.json and the plots do, not the temporary 0600."""
    model = digits_model("numpy")
    previous = os.umask(umask)
    try:
        paths = [save_checkpoint(tmp_path / "m.npz", model)]
        if importlib.util.find_spec("onnx") is not None:
            from xpnet.onnx import export

            paths.append(export(model, tmp_path / "m.onnx", input_shape=(1, 8, 8)))
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(previous)
    expected = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    for path in paths:
        assert path.stat().st_mode & 0o777 == expected, path


def test_bad_checkpoint_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad.npz: not a checkpoint: not an .npz \(zip\)"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.npz")


def _train(digits, path, *, epochs=2, resume=False, on_step=None):
    model = digits_model("numpy")
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.OneCycleLR(opt, 0.01, epochs * 19)
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        digits[0],
        epochs=epochs,
        batch_size=32,
        seed=3,
        scheduler=sched,
        checkpoint=path,
        resume=resume,
        progress=False,
        log=None,
        on_step=on_step,
    )
    return model, history


def test_ctrl_c_saves_and_resume_continues_the_same_run(tmp_path, digits):
    straight, straight_history = _train(digits, tmp_path / "a.npz")

    def press_ctrl_c(step):
        if step == 25:  # in the second epoch (19 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    path = tmp_path / "b.npz"
    with pytest.raises(KeyboardInterrupt):
        _train(digits, path, on_step=press_ctrl_c)
    state = load_checkpoint(path).state
    assert (state["epoch"], state["step"]) == (1, 6)
    resumed, resumed_history = _train(digits, path, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert resumed_history.loss == pytest.approx(straight_history.loss, rel=1e-12)
    assert resumed_history.accuracy == straight_history.accuracy


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, digits):
    path = tmp_path / "c.npz"
    holder = {}

    def poison(step):
        if step == 22:
            param = holder["model"].parameters()[0]
            param.data = param.data * np.float32("nan")

    model = digits_model("numpy")
    holder["model"] = model
    opt = optim.SGD(model.parameters(), lr=0.05)
    quiet_fit(model, digits[0], optimizer=opt, batch_size=32, checkpoint=path)
    good = path.read_bytes()
    with pytest.raises(
        TrainingDiverged,
        match=r"loss is nan at epoch 2, step 4 \(global step 23\); last good checkpoint: .*c.npz",
    ):
        quiet_fit(model, digits[0], optimizer=opt, epochs=3, batch_size=32, checkpoint=path,
                  resume=True, on_step=poison)  # fmt: skip
    assert path.read_bytes() == good


def test_nan_loss_before_any_checkpoint_says_none_was_written(tmp_path, digits):
    path = tmp_path / "c.npz"
    model = digits_model("numpy")

    def poison(step):
        if step == 2:
            model.parameters()[0].data = model.parameters()[0].data * np.float32("nan")

    with pytest.raises(
        TrainingDiverged, match=r"at epoch 1, step 3 \(global step 3\); no checkpoint was written"
    ):
        quiet_fit(model, digits[0], optimizer=optim.SGD(model.parameters(), lr=0.05),
                  batch_size=32, checkpoint=path, on_step=poison)  # fmt: skip
    assert not path.exists()


def test_fit_rejects_bad_arguments(digits):
    model = digits_model("numpy")
    opt = optim.SGD(model.parameters(), lr=0.1)
    crit = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="epochs must be an int >= 1; got 0"):
        fit(model, crit, opt, digits[0], epochs=0)
    with pytest.raises(
        ValueError, match=r"train: images \(600\) and labels \(599\) differ in count"
    ):
        fit(model, crit, opt, (digits[0][0], digits[0][1][:-1]), epochs=1)
    with pytest.raises(
        ValueError,
        match=r"train: labels must lie in \[0, 10\) for 10 classes; got values in \[3, 12\]",
    ):
        fit(model, crit, opt, (digits[0][0], digits[0][1] + 3), epochs=1)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint path"):
        fit(model, crit, opt, digits[0], epochs=1, resume=True)


def test_shipped_models_shapes():
    x = np.zeros((2, 1, 28, 28), np.float32)
    for name in models.MODELS:
        model = models.build(name, backend="numpy")
        assert model(x).shape == (2, 10), name
    with pytest.raises(
        ValueError,
        match="model must be one of mnist_cnn, lenet5, seed_cnn, small_cnn, mnist_resnet; got 'vgg'",
    ):
        models.build("vgg")


@pytest.mark.parametrize(
    ("name", "image_shape", "n_classes"),
    [("mnist_cnn", (3, 32, 32), 4), ("lenet5", (1, 12, 12), 2), ("seed_cnn", (2, 9, 9), 3),
     ("small_cnn", (1, 1, 5), 7), ("small_cnn", (3, 8, 8), 2), ("mnist_resnet", (1, 13, 10), 5)],
)  # fmt: skip
def test_models_build_for_other_image_shapes_and_classes(name, image_shape, n_classes):
    model = models.build(name, backend="numpy", image_shape=image_shape, n_classes=n_classes)
    assert model(np.zeros((2, *image_shape), np.float32)).shape == (2, n_classes)


@pytest.mark.parametrize(
    ("name", "image_shape", "message"),
    [("mnist_cnn", (1, 15, 15), "mnist_cnn: needs images of at least 16x16; got 15x15"),
     ("lenet5", (1, 11, 11), "lenet5: needs images of at least 12x12"),
     ("seed_cnn", (1, 8, 9), "seed_cnn: needs square images"),
     ("mnist_resnet", (1, 3, 8), "mnist_resnet: needs images of at least 4x4")],
)  # fmt: skip
def test_models_name_the_smallest_image_they_take(name, image_shape, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, image_shape=image_shape)


def test_fit_skips_the_input_gradient(digits, monkeypatch):
    calls = []
    model = digits_model("numpy")
    original = model.backward
    monkeypatch.setattr(
        model, "backward", lambda g, **kw: calls.append(kw) or original(g, **kw), raising=False
    )
    quiet_fit(model, digits[0], batch_size=200)
    assert calls == [{"input_grad": False}] * 3


def test_curves_call_the_held_out_images_validation(tmp_path, monkeypatch):
    """The per-epoch curve is of the held-out training images, not the test set."""
    figure = pytest.importorskip("matplotlib.figure")  # the submodule: not loaded by "matplotlib"
    from xpnet.plots import plot_curves
    from xpnet.train import History

    labels = []
    save = figure.Figure.savefig

    def recording(fig, *args, **kwargs):
        labels.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(figure.Figure, "savefig", recording)
    history = History(loss=[1.0, 0.5], accuracy=[0.5, 0.8], val_loss=[0.9, 0.6],
                      val_accuracy=[0.6, 0.7])  # fmt: skip
    plot_curves(history, tmp_path / "curves.png")
    assert labels == ["train", "validation", "train", "validation"]


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_compile_without_a_compiler_is_one_clear_error(backend):
    """``compile=True`` needs JAX (this test does not)."""
    from xpnet.compiled import CompileUnsupported

    model = models.build("lenet5", backend=backend, image_shape=(1, 12, 12))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((12, 1, 12, 12)).astype(np.float32), rng.integers(0, 10, 12)
    with pytest.raises(CompileUnsupported, match=rf"jax \(jax.jit\); the model is on {backend}"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (x, y),
            epochs=1, compile=True, log=None)  # fmt: skip


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_predict_equals_the_generic_path_on_every_shipped_model(xp, backend, name, rng):
    """``predict`` (eval mode inside ``nn.inference_mode``: batch norm folded into the conv
    before it, the NumPy kernels on) gives the probabilities of the plain eval-mode forward
    with every kernel off, to float32 rounding: batches of 1 and 7 on every backend (7
    alone on JAX), and 1,001 images (two of ``predict``'s batches) on NumPy. Random running
    statistics, so a fold that misplaced a channel would show."""
    model = models.build(name, seed=1, backend=backend).eval()
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            c = layer.running_mean.shape[0]
            layer.running_mean.data = xpnet.asarray(rng.standard_normal(c), backend=backend)
            layer.running_var.data = xpnet.asarray(rng.random(c) + 0.5, backend=backend)
            layer.running_mean.data = xp.astype(layer.running_mean.data, xp.float32)
            layer.running_var.data = xp.astype(layer.running_var.data, xp.float32)
    # eager JAX compiles every operation for each new shape: one batch size there
    for count in {"numpy": (1, 7, 1001), "jax": (7,)}.get(backend, (1, 7)):
        x = rng.standard_normal((count, 1, 28, 28)).astype(np.float32)
        got = predict(model, x)
        with xpnet.use_fast_paths(False):
            logits = xpnet.to_numpy(model(xpnet.asarray(x, backend=backend))).astype(np.float64)
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        assert got.shape == (count, 10) and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5, err_msg=f"{name} {count}")
