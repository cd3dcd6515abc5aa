"""The ``xpnet`` command on small subsets: train, evaluate, predict, info, and its errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from xpnet import _backend
from xpnet.cli import main
from xpnet.datasets import load_mnist

from .conftest import SELECTED


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            "train",
            "--model",
            "seed_cnn",
            "--epochs",
            "2",
            "--limit",
            "2048",
            "--batch-size",
            "64",
            "--lr",
            "0.02",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    return out


@pytest.mark.slow
def test_train_writes_checkpoint_metrics_and_plots(trained):
    assert (trained / "model.npz").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert (
        metrics["backend"] == "numpy" and metrics["epochs"] == 2 and metrics["model"] == "seed_cnn"
    )
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert len(metrics["history"]["loss"]) == 2
    assert np.sum(metrics["confusion_matrix"]) == 2048
    pytest.importorskip("matplotlib")
    for name in ("curves.png", "confusion.png"):
        assert (trained / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_prints_accuracy_last(trained, capsys, xp, backend):
    assert (
        main(["evaluate", str(trained / "model.npz"), "--backend", backend, "--limit", "2048"]) == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test_accuracy: ")
    assert len(last.split(": ")[1]) == 6  # four decimals
    metrics = json.loads((trained / "metrics.json").read_text())
    assert float(last.split(": ")[1]) == pytest.approx(metrics["test_accuracy"], abs=5e-5)


def test_predict_reads_images_of_any_size(trained, tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    _, (x_test, y_test) = load_mnist()
    paths = []
    for i in range(3):
        pixels = (x_test[i, 0] * 255).astype(np.uint8)
        path = tmp_path / f"digit{i}.png"
        pil.fromarray(255 - pixels).resize((56, 40)).save(path)  # dark on light, other size
        paths.append(str(path))
    assert main(["predict", str(trained / "model.npz"), *paths]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.split(": ")[1].split(" (p=")[0] in "0123456789"
        assert 0.0 <= float(line.split("p=")[1].rstrip(")")) <= 1.0
    assert main(["predict", str(trained / "model.npz"), str(tmp_path / "nope.png")]) == 2
    assert "nope.png: cannot read image" in capsys.readouterr().err


def test_unusable_backend_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(
        _backend, "backend_status", lambda name: (name != "cupy", "no CUDA device found")
    )
    assert main(["train", "--backend", "cupy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cupy: no CUDA device found; available: numpy")
    assert len(err.splitlines()) == 1


def test_refuses_to_overwrite_a_run_without_resume(trained, capsys):
    assert main(["train", "--out", str(trained), "--limit", "64", "--no-progress"]) == 2
    assert "exists: pass --resume" in capsys.readouterr().err


def test_bad_checkpoint_and_data_dir(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "IDX file not found" in capsys.readouterr().err


def _damaged(kind, good, tmp_path):
    """A copy of the checkpoint ``good`` damaged in one way: ``kind`` names it."""
    path = tmp_path / f"{kind}.npz"
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # "mismatched": a valid archive whose weights do not fit its spec
        with np.load(good) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["model/0.weight"] = arrays["model/0.weight"][:, :, :3, :3]
        np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", r"empty\.npz: not a checkpoint: the file is empty \(0 bytes\)"),
        ("truncated", r"truncated\.npz: damaged checkpoint: the \.npz archive is truncated"),
        ("random", r"random\.npz: not a checkpoint: not an \.npz \(zip\) archive"),
        ("mismatched", r"mismatched\.npz: its weights do not fit the architecture it records "
                       r"\(0\.weight must have shape"),
    ],
)  # fmt: skip
def test_a_damaged_checkpoint_is_one_line_and_exit_2(trained, tmp_path, capsys, kind, message):
    path = _damaged(kind, trained / "model.npz", tmp_path)
    for command in (["evaluate", str(path)], ["predict", str(path), str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err
        assert "allow_pickle" not in err and "Traceback" not in err


def test_info_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "info"], capture_output=True, text=True, check=True
    )
    assert "numpy" in result.stdout and "available: numpy" in result.stdout


@pytest.mark.slow
def test_train_holds_out_a_validation_split_and_tests_once(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["val_images"]) == (2048 - 204, 204)
    assert metrics["test_images"] == 2048
    assert len(metrics["history"]["val_accuracy"]) == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "nan", "--lr must be a finite number > 0; got nan"),
        ("--lr", "inf", "--lr must be a finite number > 0; got inf"),
        ("--lr", "0", "--lr must be a finite number > 0; got 0.0"),
        ("--lr", "-1e-3", "--lr must be a finite number > 0; got -0.001"),
        ("--epochs", "0", "--epochs must be >= 1; got 0"),
        ("--batch-size", "-5", "--batch-size must be >= 1; got -5"),
        ("--limit", "0", "--limit must be >= 1; got 0"),
        ("--val", "-1", "--val must be >= 0; got -1"),
        ("--seed", "-2", "--seed must be >= 0; got -2"),
    ],
)
def test_numeric_options_are_checked_up_front(tmp_path, capsys, option, value, message):
    assert main(["train", f"{option}={value}", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == message
    assert not (tmp_path / "o").exists()  # nothing started


def test_val_larger_than_the_training_set_is_one_line(tmp_path, capsys):
    code = main(["train", "--limit", "100", "--val", "95", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--val must be 0 or between 10 and 90" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "sample", "summary"])
def test_help_has_one_line_per_option_with_its_default(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = [line.strip() for line in text.splitlines() if line.strip().startswith("--")]
    assert options, text
    for line in options:
        name = line.split()[0]
        flags = ("--help", "--resume", "--no-progress", "--distributed", "--sync-bn", "--compile")
        if name in flags:
            continue
        assert "default" in line, f"{command} {name}: no default in {line!r}"


def test_summary_prints_layers_shapes_parameters_and_multiply_adds(capsys):
    assert main(["summary", "--model", "mnist_cnn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("input shape (1, 28, 28)")
    assert any("(16, 24, 24)" in line and "416" in line for line in lines)  # conv1
    total = lines[-1].split()
    # conv1 24*24*16*25, conv2 8*8*32*400, dense 512*128 and 128*10 multiply-adds
    assert total[0] == "total" and total[-1] == f"{230400 + 819200 + 65536 + 1280:,}"
    assert total[-2] == f"{416 + 12832 + 65664 + 1290:,}"


def test_the_test_set_is_touched_once_at_the_end(tmp_path, monkeypatch, capsys):
    import xpnet.cli.train
    import xpnet.train

    seen = []

    def recording(evaluate):
        def wrapper(model, x, y, **kwargs):
            seen.append(len(x))
            return evaluate(model, x, y, **kwargs)

        return wrapper

    monkeypatch.setattr(xpnet.train, "evaluate", recording(xpnet.train.evaluate))
    monkeypatch.setattr(xpnet.cli.train, "evaluate", recording(xpnet.cli.train.evaluate))
    args = ["train", "--model", "seed_cnn", "--epochs", "2", "--limit", "300", "--val", "50"]
    assert main([*args, "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert seen == [50, 50, 300]  # validation after each epoch, the test set once
    assert "250 images, 50 held out for validation" in capsys.readouterr().out


def test_train_with_shift_augmentation(tmp_path, capsys):
    args = ["train", "--model", "seed_cnn", "--epochs", "1", "--limit", "256", "--val", "0"]
    assert main([*args, "--augment", "shift", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "held out for validation, 1 epoch, batch" in capsys.readouterr().out  # not "1 epochs"
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["augment"] == "shift"


def test_summary_counts_the_layers_inside_residual_blocks(capsys):
    assert main(["summary", "--model", "mnist_resnet"]) == 0
    total = capsys.readouterr().out.splitlines()[-1].split()
    # stem 28*28*16*9; block 16: 2 * 14*14*16*144; conv 14*14*32*144; block 32: 2 * 7*7*32*288; dense
    macs = 112896 + 2 * 451584 + 903168 + 2 * 451584 + 320
    assert total[-1] == f"{macs:,}" and total[-2] == "28,410"


def test_compile_without_jax_backend_is_one_line(tmp_path, capsys):
    code = main(["train", "--compile", "--limit", "100", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--compile needs --backend jax (jax.jit); numpy runs one operation at a time" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("model", ["mnist_cnn", "lenet5", "seed_cnn", "small_cnn", "mnist_resnet"])
def test_summary_lines_fit_a_terminal(model, capsys):
    """Each layer in a few words (``Conv2d(1, 16, 5)``), not its whole repr: <= 100 columns."""
    assert main(["summary", "--model", model]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    if model == "mnist_cnn":
        assert lines[3].startswith("0: Conv2d(1, 16, 5)  ")


def test_sample_writes_a_digit_that_predict_reads(trained, tmp_path, capsys):
    """The quick start's ``xpnet sample``: a test digit, dark on light and 4x the size, as a
    user's drawing would be; ``xpnet predict`` gives the label it printed."""
    pytest.importorskip("PIL")
    path = tmp_path / "my_digit.png"
    assert main(["sample", str(path), "--index", "3"]) == 0
    label = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    _, (_, y_test) = load_mnist()
    assert label == str(int(y_test[3]))
    assert main(["predict", str(trained / "model.npz"), str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: {label} (p=")
    for bad, message in ((["--index", "10000"], "--index must be in [0, 9999]"),
                         (["--scale", "0"], "--scale must be in [1, 64]")):  # fmt: skip
        assert main(["sample", str(tmp_path / "x.png"), *bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "no" / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("cannot write ")


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``xpnet summary | head -1``: the closed pipe ends the command quietly. ``true`` reads
    nothing and exits long before Python has started, so every write meets a closed pipe."""
    import subprocess
    import sys

    run = subprocess.run(
        f"{sys.executable} -m xpnet summary --model mnist_resnet | true",
        shell=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
    assert run.stderr == ""


@pytest.mark.slow
def test_cli_compiled_training_in_jaxs_default_32_bit_mode(tmp_path, capsys):
    """As a user runs it: JAX's float32 default (the tests turn 64-bit mode on), warnings as
    errors (an int64 request would warn), the checkpoint then evaluated on NumPy. In its
    own process, so it runs in the suite's main part, beside the jax backend's tests."""
    import os

    if "jax" not in SELECTED:
        pytest.skip("jax is not selected")
    pytest.importorskip("jax", reason="jax is not installed: the compiled step is JAX's")
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    out = tmp_path / "run"
    train = [sys.executable, "-W", "error", "-m", "xpnet", "train", "--backend", "jax",
             "--compile", "--model", "seed_cnn", "--limit", "400", "--epochs", "1", "--val", "0",
             "--out", str(out),
             "--no-progress"]  # fmt: skip
    run = subprocess.run(train, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert ", compiled" in run.stdout
    accuracy = float(run.stdout.strip().splitlines()[-1].split(": ")[1])
    assert accuracy > 0.1  # above chance; seed_cnn (the fewest layers to compile), 4 steps: 0.165
    assert main(["evaluate", str(out / "model.npz"), "--backend", "numpy", "--limit", "400"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == run.stdout.strip().splitlines()[-1]
