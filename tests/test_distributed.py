"""Data-parallel training under ``mpiexec -n 2`` (mpi4py and MPICH's wheel, which
``nox -s tests`` installs).

Each test starts its ranks as a subprocess with a timeout, so a hang fails instead of
stalling the suite. The worker is ``tests/distributed_worker.py``, started with
``python -m mpi4py``, which aborts every rank when one raises (as users are told to).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

from xpnet.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "distributed_worker.py")
BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec") if (BIN / "mpiexec").exists() else "mpiexec"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
TIMEOUT = 120


def ranks(n: int, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    command = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", WORKER, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


def serial(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, WORKER, *args, "--serial"]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=ENV)


def results(prefix: Path, rank: int = 0) -> dict[str, np.ndarray]:
    with np.load(f"{prefix}.{rank}.npz") as data:
        return {key.split("/", 1)[1]: data[key] for key in data.files}


def assert_close_runs(ours: dict, reference: dict) -> None:
    for key, value in reference.items():
        np.testing.assert_allclose(ours[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("net", ["plain", "syncbn"])
def test_two_ranks_equal_one_process_and_each_other(net, tmp_path):
    """100 images, global batch 32 (the last of 4: 2 per rank), 2 epochs."""
    two = ranks(2, str(tmp_path / "two"), "--net", net)
    assert two.returncode == 0, two.stderr[-3000:]
    one = serial(str(tmp_path / "one"), "--net", net)
    assert one.returncode == 0, one.stderr[-3000:]
    rank0, rank1, reference = (results(tmp_path / "two", 0), results(tmp_path / "two", 1),
                               results(tmp_path / "one"))  # fmt: skip
    for key in rank0:
        if key != "allreduce":
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)  # bitwise
    assert_close_runs(rank0, reference)
    # one gradient allreduce a step (2 epochs x 4 steps); SyncBatchNorm adds its own 3
    per_step = {"plain": 1, "syncbn": 1 + 3}[net]
    assert int(rank0["allreduce"]) == 8 * per_step


@pytest.mark.slow
def test_plain_batch_norm_keeps_rank_0s_running_statistics_on_every_rank(tmp_path):
    """Local batch statistics (DDP's default): the parameters still agree bitwise, and the
    running statistics are rank 0's on every rank (broadcast before each step)."""
    run = ranks(2, str(tmp_path / "bn"), "--net", "bn")
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = results(tmp_path / "bn", 0), results(tmp_path / "bn", 1)
    assert "1.running_mean" in rank0
    for key in rank0:
        if key != "allreduce":
            np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_checkpoint_from_k_ranks_resumes_on_others(first, then, tmp_path):
    ckpt = str(tmp_path / "model.npz")
    start = ranks(first, str(tmp_path / "a"), "--epochs", "1", "--checkpoint", ckpt) if first > 1 \
        else serial(str(tmp_path / "a"), "--epochs", "1", "--checkpoint", ckpt)  # fmt: skip
    assert start.returncode == 0, start.stderr[-3000:]
    resumed = ranks(then, str(tmp_path / "b"), "--checkpoint", ckpt, "--resume") if then > 1 \
        else serial(str(tmp_path / "b"), "--checkpoint", ckpt, "--resume")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = serial(str(tmp_path / "c"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert_close_runs(results(tmp_path / "b"), results(tmp_path / "c"))


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["--raise-at", "--kill-at"])
def test_a_failing_rank_ends_every_rank_and_leaves_a_loadable_checkpoint(fault, tmp_path):
    """Rank 1 raises (or is SIGKILLed) at global step 6, in epoch 2: every rank ends with a
    non-zero exit within 30 s, and epoch 1's checkpoint still loads."""
    ckpt = tmp_path / "model.npz"
    started = time.perf_counter()
    run = ranks(2, str(tmp_path / "x"), "--checkpoint", str(ckpt), fault, "6", timeout=60)
    assert run.returncode != 0
    assert time.perf_counter() - started < 30
    assert load_checkpoint(ckpt).state["epoch"] == 1


@pytest.mark.slow
def test_cli_trains_on_two_ranks_like_one_process(tmp_path):
    common = ["-m", "xpnet", "train", "--model", "seed_cnn", "--epochs", "1", "--limit", "2048",
              "--batch-size", "64", "--no-progress"]  # fmt: skip
    two = subprocess.run([MPIEXEC, "-n", "2", sys.executable, *common, "--distributed",
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300, env=ENV)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("test_accuracy") == 1  # rank 0 alone reports
    one = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=300, env=ENV)  # fmt: skip
    accuracy = [float(r.stdout.strip().splitlines()[-1].split()[-1]) for r in (two, one)]
    assert abs(accuracy[0] - accuracy[1]) <= 0.002, accuracy
    assert {"model.npz", "metrics.json"} <= {p.name for p in (tmp_path / "two").iterdir()}


@pytest.mark.slow
def test_cli_refuses_a_batch_that_does_not_split(tmp_path):
    run = subprocess.run(
        [MPIEXEC, "-n", "2", sys.executable, "-m", "xpnet", "train", "--distributed",
         "--batch-size", "33", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=TIMEOUT, env=ENV,
    )  # fmt: skip
    assert run.returncode != 0
    assert "--batch-size 33 does not split over 2 ranks" in run.stderr


def test_cli_distributed_without_mpi4py_is_one_line(tmp_path, monkeypatch, capsys):
    from xpnet.cli import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert main(["train", "--distributed", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'xpnet[mpi]'" in err


@pytest.mark.slow
def test_distributed_without_mpiexec_trains_as_one_process(tmp_path):
    """Size 1 (no mpiexec): the same run as without --distributed."""
    common = ["-m", "xpnet", "train", "--model", "seed_cnn", "--epochs", "1", "--limit", "512",
              "--batch-size", "64", "--no-progress"]  # fmt: skip
    last_lines = []
    for name, extra in (("alone", ["--distributed"]), ("plain", [])):
        command = [sys.executable, *common, *extra, "--out", str(tmp_path / name)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=ENV)
        assert run.returncode == 0, run.stderr[-2000:]
        last_lines.append(run.stdout.strip().splitlines()[-1])
    assert last_lines[0] == last_lines[1]
