"""Shared by the benchmark scripts: timing done right, machine facts, results files, plots."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import xpnet

RESULTS = Path(__file__).resolve().parent / "results"


def synchronizer(impl: str) -> Callable[[], None]:
    """A function that waits for the device of ``impl`` (a no-op on the CPU)."""
    if impl.endswith("cupy"):
        import cupy

        return cupy.cuda.Device().synchronize
    if impl.endswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def implementations() -> list[str]:
    """xpnet-numpy, xpnet-cupy, torch-cpu and torch-cuda: those usable here."""
    impls = ["xpnet-numpy"]
    if "cupy" in xpnet.available_backends():
        impls.append("xpnet-cupy")
    try:
        import torch

        impls.append("torch-cpu")
        if torch.cuda.is_available():
            impls.append("torch-cuda")
    except ImportError:
        pass
    return impls


def time_it(
    fn: Callable[[], Any], sync: Callable[[], None], *, warmup: int, repeats: int
) -> dict[str, float]:
    """Median and spread of ``repeats`` timed calls after ``warmup`` calls.

    The device is synchronised before each clock read, so GPU work is counted in full.
    """
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    q1, _, q3 = np.percentile(times, [25, 50, 75])
    return {
        "median_s": statistics.median(times),
        "q1_s": float(q1),
        "q3_s": float(q3),
        "min_s": min(times),
        "repeats": repeats,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {"xpnet": xpnet.__version__, "numpy": np.__version__},
        "backends": xpnet.available_backends(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        facts["versions"]["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    if "cupy" in facts["backends"]:
        import cupy

        facts["versions"]["cupy"] = cupy.__version__
        facts["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    try:
        from threadpoolctl import threadpool_info

        facts["blas"] = [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads")}
            for i in threadpool_info()
        ]
    except ImportError:
        pass
    return facts


def machine_name(facts: dict[str, Any]) -> str:
    label = facts.get("gpu") or f"{facts['cpu']} {facts['cpu_count']}cpu"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def write_results(section: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Merge ``payload`` under ``section`` into ``results/<machine>-<date>.json``."""
    facts = machine_facts()
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{machine_name(facts)}-{date.today().isoformat()}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["machine"] = facts
    data[section] = payload
    path.write_text(json.dumps(data, indent=2))
    return path


def bar_plot(
    path: Path, groups: list[str], series: dict[str, list[float]], *, ylabel: str, title: str
) -> Path | None:
    """Grouped bars (log scale): one group per case, one bar per implementation."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: plot skipped")
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups)), 4))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = np.arange(len(groups)) + i * width
        ax.bar(xs, [v * 1e3 if v == v else 0 for v in values], width, label=name)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
