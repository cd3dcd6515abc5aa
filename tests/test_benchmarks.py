"""Smoke test: each benchmark script runs in --quick mode and writes well-formed results.

No timing is asserted: performance is shown in benchmarks/, not in tests. The scripts of
the selected tests start on a background thread as soon as collection ends
(``tests/background.py``), so their minutes overlap the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import background

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
QUICK_SCRIPTS = [
    "ops.py",
    "mnist.py",
    "profile_step.py",
    "launches.py",
    "inference.py",
    "shapes.py",
    "jax_step.py",
]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``benchmarks/<script> ARGS`` in a fresh interpreter, matplotlib without a display."""
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def _command(test: pytest.Item) -> background.Command | None:
    """The script run of a test of this module (``None`` for a test without one)."""
    name = test.name
    if name.startswith("test_benchmark_script_quick["):
        script = name.removeprefix("test_benchmark_script_quick[").removesuffix("]")
        return lambda out: run_script(script, "--quick", "--out", str(out))
    if name == "test_mnist_benchmark_with_the_resnet_and_augmentation":
        args = ["--quick", "--model", "mnist_resnet", "--augment", "--epochs", "1"]
        return lambda out: run_script("mnist.py", *args, "--out", str(out))
    if name == "test_peers_benchmark_quick_with_the_libraries_of_this_environment":
        return lambda out: run_script(
            "peers.py", "--quick", "--only", "xpnet,xpnet-no-numba", "--out", str(out)
        )
    return None


def start_in_background(test: pytest.Item) -> None:
    """Queue this test's script run (``conftest.py`` calls it once collection ends)."""
    command = _command(test)
    if command is not None and importlib.util.find_spec("torch") is not None:
        background.start(test.nodeid, command)


def finished_run(request: pytest.FixtureRequest) -> tuple[subprocess.CompletedProcess, Path]:
    """This test's script run, waited for, and the folder it wrote to."""
    command = _command(request.node)
    assert command is not None
    return background.result(request.node.nodeid, command)


@pytest.mark.slow
@pytest.mark.parametrize("script", QUICK_SCRIPTS)
def test_benchmark_script_quick(script, request):
    pytest.importorskip("torch")
    if script == "inference.py":
        pytest.importorskip("onnxruntime")
    if script == "jax_step.py":
        pytest.importorskip("jax")
    result, tmp_path = finished_run(request)
    assert result.returncode == 0, result.stderr[-3000:]
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert {"cpu", "cpu_count", "versions", "date"} <= set(data["machine"])
    sections = {"ops.py": "ops", "mnist.py": "mnist", "profile_step.py": "profile",
                "launches.py": "launches", "inference.py": "inference",
                "shapes.py": "shapes", "jax_step.py": "jax_step"}  # fmt: skip
    section = data[sections[script]]
    assert section["quick"] is True
    if script == "launches.py":
        step = section["steps"]["mnist_cnn/adam"]
        assert 0 < step["xpnet"]["ops"] <= 100 and step["torch"]["ops"] > 0
    elif script == "inference.py":
        assert len(section["results"]) == 8
        assert all(row["latency_ms"] > 0 for row in section["results"].values())
    elif script == "ops.py":
        assert section["cases"]
        for case in section["cases"]:
            for impl in ("xpnet-numpy", "xpnet-numpy-generic", "torch-cpu"):
                assert case["times"][impl]["median_s"] > 0
            assert case["ratios"]["xpnet-numpy / torch-cpu"] > 0
    elif script == "shapes.py":
        assert len(section["results"]) == 2 and section["summary"]["cells"] == 2
        for cell in section["results"]:
            assert cell["xpnet_ms"] > 0 and cell["torch_ms"] > 0 and cell["ratio"] > 0
        assert list(tmp_path.glob("*-shapes.png"))
    elif script == "jax_step.py":
        assert set(section["times"]) >= {"xpnet-jax-eager", "xpnet-jax-compiled", "jax-native"}
        assert all(t["median_s"] > 0 for t in section["times"].values())
        assert all(s > 0 for s in section["first_call_s"].values())
        assert list(tmp_path.glob("*-jax-step.png"))
    elif script == "mnist.py":
        assert section["results"]["xpnet-numpy"]["epoch_s"]
        assert section["results"]["xpnet-numpy-generic"]["step_b128"]["median_s"] > 0
        assert "step b128: xpnet-numpy / torch-cpu" in section["ratios"]
    else:
        assert section["layers_ms"]["whole step"]["fast"] > 0
        assert section["conv_phases_ms"]["conv2 im2col"]["generic"] > 0


@pytest.mark.slow
def test_mnist_benchmark_with_the_resnet_and_augmentation(request):
    """The residual net's torch twin (BatchNorm, Residual, global pooling) trains beside it."""
    pytest.importorskip("torch")
    result, tmp_path = finished_run(request)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob("*.json")
    section = json.loads(path.read_text())["mnist-mnist_resnet"]
    assert section["augment"] is True and section["model"] == "mnist_resnet"
    for impl in ("xpnet-numpy", "torch-cpu"):
        assert len(section["results"][impl]["test_accuracy_per_epoch"]) == 1
    assert list(tmp_path.glob("*-mnist-mnist_resnet.png"))


@pytest.mark.slow
def test_peers_benchmark_quick_with_the_libraries_of_this_environment(request):
    """peers.py with the libraries that need no virtualenv of their own (xpnet with and
    without the compiled loops, PyTorch): each in its own process, results and table."""
    pytest.importorskip("torch")
    result, tmp_path = finished_run(request)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob("*-peers-quick.json")
    section = json.loads(path.read_text())["peers"]
    assert section["libraries"] == ["torch", "xpnet", "xpnet-no-numba"]
    for library in section["libraries"]:
        assert "error" not in section["info"][library], section["info"][library]
        assert section["info"][library]["dtypes"] in (["float32"], ["torch.float32"])
        for net in ("A", "B", "R"):  # R: mnist_resnet, xpnet's and its PyTorch copy
            assert section["median_ms"][library][f"{net} native"] > 0
    assert section["ratio_to_torch"]["torch"]["A native"] == 1.0
    assert section["ratio_to_torch_rounds"]["torch"]["A native"] == [1.0]  # one round
    assert section["xpnet_to_before_rounds"] == {}  # no --before
    assert "| xpnet | " in result.stdout
    assert list(tmp_path.glob("*-peers-quick.png"))
