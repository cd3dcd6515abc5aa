"""The device-operation budget of a training step (issue 19), counted on the CPU.

xpnet's generic array-API code, the code CuPy and torch on CUDA run, on torch CPU tensors
under torch.profiler (``benchmarks/launch_count.py``): one training step of the default
model at batch 128, as ``fit`` runs it. A failure here means a change added device
operations (each ~5-10 us of host time on a GPU): see ``benchmarks/launches.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import SELECTED

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from launch_count import count_ops
from launches import measure, xpnet_step
from xpnet.kernels import use_fast_paths

pytestmark = pytest.mark.skipif("torch" not in SELECTED, reason="torch is not selected")

BUDGET = {"adam": 100, "momentum": 60, "sgd": 61}
"""The issue's goals: Adam <= 100 (68 when written; 265 before), SGD with momentum <= 60
(59; 193 before). SGD with Nesterov momentum (the CLI's ``sgd``): 61 when written (209
before), held there so the count cannot creep back."""


@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd"])
def test_default_model_step_within_budget_and_no_host_sync(optimizer):
    with use_fast_paths(False):
        counted = measure(xpnet_step("mnist_cnn", optimizer))
    assert counted["syncs"] == 0, counted["by_name"]
    assert counted["ops"] <= BUDGET[optimizer], counted["by_name"]


def test_the_counter_counts_copies_not_views():
    import torch

    x = torch.ones((4, 6))
    views = count_ops(lambda: x.reshape(6, 4).T[1:3])
    assert views.ops == 0
    work = count_ops(lambda: (x.T.reshape(24) + 1.0).sum().item())
    assert work.ops == 3 and work.syncs == 1  # reshape of a transpose copies; add; sum
