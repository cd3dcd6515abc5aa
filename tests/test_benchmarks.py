"""Smoke test: each benchmark script runs in --quick mode and writes well-formed results.

No timing is asserted: performance is shown in benchmarks/, not in tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", ["ops.py", "mnist.py"])
def test_benchmark_script_quick(script, tmp_path):
    pytest.importorskip("torch")
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert {"cpu", "cpu_count", "versions", "date"} <= set(data["machine"])
    section = data["ops" if script == "ops.py" else "mnist"]
    assert section["quick"] is True
    if script == "ops.py":
        assert section["cases"] and all(
            c["times"]["xpnet-numpy"]["median_s"] > 0 for c in section["cases"]
        )
    else:
        assert section["results"]["xpnet-numpy"]["epoch_s"]
        assert "step b128: xpnet-numpy / torch-cpu" in section["ratios"]
