"""The CuPy kernels' logic, checked on the CPU (see ``tests/cupy_emulation.py``): they have
not run on a GPU yet, so this is what stands between them and a wrong gradient."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_cupy_kernels_agree_with_the_generic_code_when_emulated_on_the_cpu(tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: the kernels' C++ bodies cannot be compiled here")
    script = Path(__file__).with_name("cupy_emulation.py")
    src = Path(__file__).resolve().parents[1] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, str(script), "150", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "150 random cases" in result.stdout
