"""The ``xpnet`` command on small subsets: train, evaluate, predict, info, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from xpnet import _backend
from xpnet.cli import main
from xpnet.datasets import load_mnist


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


def test_info_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "xpnet", "info"], capture_output=True, text=True, check=True
    )
    assert "numpy" in result.stdout and "available: numpy" in result.stdout
