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
from typing import Any, NamedTuple

import numpy as np

import xpnet
from xpnet.kernels import use_fast_paths

RESULTS = Path(__file__).resolve().parent / "results"


def synchronizer(impl: str) -> Callable[[], None]:
    """A function that waits for the device of ``impl`` (a no-op on the CPU)."""
    if impl.startswith("xpnet-cupy"):
        import cupy

        return cupy.cuda.Device().synchronize
    if impl == "torch-cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def implementations(*, generic: bool = True) -> list[str]:
    """The implementations usable here, in this order.

    - ``xpnet-numpy``: xpnet on NumPy, with its NumPy fast paths (the default);
    - ``xpnet-numpy-generic``: the same with the fast paths off, i.e. the generic array-API
      code every other backend runs (the "before" of each NumPy optimisation);
    - ``xpnet-cupy`` (a usable CUDA device), ``torch-cpu``, ``torch-cuda``: as named.
    """
    impls = ["xpnet-numpy", *(["xpnet-numpy-generic"] if generic else [])]
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


def backend_of(impl: str) -> str:
    """The xpnet backend of an ``xpnet-*`` implementation name."""
    return impl.split("-")[1]


def as_implemented(impl: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` as ``impl`` runs it: inside ``use_fast_paths(False)`` for ``*-generic``."""
    if not impl.endswith("-generic"):
        return fn

    def generic() -> Any:
        with use_fast_paths(False):
            return fn()

    return generic


def compare(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int,
    rounds: int,
    block: int,
    pause_s: float = 0.2,
) -> dict[str, dict[str, Any]]:
    """Time several implementations of one thing, interleaved, in ``rounds`` rounds.

    Each round runs every implementation for ``block`` timed calls in turn, after a pause
    of ``pause_s`` so that the previous library's worker threads are idle and do not steal
    a core: OpenBLAS's spin-wait about 0.1 s after a product, and PyTorch measured 8.1 ms
    a step 0.05 s after NumPy's last product against 7.8 ms after 0.3 s (11.2 ms with no
    pause). Interleaving
    rounds spreads the drift of a shared machine over all implementations; call by call
    interleaving would make them fight over the cores instead. The device is
    synchronised before each clock read, so GPU work is counted in full.

    Returns, per implementation: median, quartiles and minimum over all timed calls, and
    each round's median (for paired ratios, :func:`paired_ratio`).
    """
    syncs = {impl: synchronizer(impl) for impl in fns}
    for impl, fn in fns.items():
        for _ in range(warmup):
            fn()
        syncs[impl]()
    samples: dict[str, list[float]] = {impl: [] for impl in fns}
    round_medians: dict[str, list[float]] = {impl: [] for impl in fns}
    for _ in range(rounds):
        for impl, fn in fns.items():
            sync = syncs[impl]
            time.sleep(pause_s)
            fn()  # one untimed call: caches and thread pools of this library warm again
            times = []
            for _ in range(block):
                sync()
                start = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - start)
            samples[impl].extend(times)
            round_medians[impl].append(statistics.median(times))
    results = {}
    for impl, times in samples.items():
        q1, q3 = np.percentile(times, [25, 75])
        results[impl] = {
            "median_s": statistics.median(times),
            "q1_s": float(q1),
            "q3_s": float(q3),
            "min_s": min(times),
            "calls": len(times),
            "round_medians_s": round_medians[impl],
        }
    return results


def median_ms(fn: Callable[[], Any], repeats: int, *, warmup: int = 1) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def paired_ratio(times: dict[str, dict[str, Any]], numerator: str, denominator: str) -> float:
    """Median over rounds of (numerator / denominator) round medians from :func:`compare`."""
    pairs = zip(times[numerator]["round_medians_s"], times[denominator]["round_medians_s"])
    return statistics.median(a / b for a, b in pairs)


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
            {k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info()
        ]
    except ImportError:
        pass
    facts["env"] = {
        name: os.environ[name]
        for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "CUPY_TF32")
        if name in os.environ
    }
    return facts


def blas_kernel(facts: dict[str, Any]) -> str | None:
    """NumPy's OpenBLAS kernel family (e.g. ``SkylakeX``, or ``Haswell`` when
    ``OPENBLAS_CORETYPE`` forces it), if threadpoolctl could tell."""
    for lib in facts.get("blas", []):
        if lib.get("internal_api") == "openblas" and lib.get("architecture"):
            return str(lib["architecture"])
    return None


def machine_name(facts: dict[str, Any]) -> str:
    """``<gpu>`` or ``<cpu>-<n>cpu``, plus the OpenBLAS kernel NumPy ran with (it changes
    NumPy's matrix products by up to 2x on one machine, so runs with different kernels get
    different files)."""
    label = facts.get("gpu") or f"{facts['cpu']} {facts['cpu_count']}cpu"
    kernel = blas_kernel(facts)
    if kernel:
        label += f" openblas {kernel}"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def write_results(section: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Merge ``payload`` under ``section`` into ``results/<machine>-<date>.json``.

    A ``--quick`` smoke run writes ``<machine>-<date>-quick.json`` instead (git ignores it),
    so it never overwrites a day's real figures.
    """
    facts = machine_facts()
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if payload.get("quick") else ""
    path = out_dir / f"{machine_name(facts)}-{date.today().isoformat()}{suffix}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data["machine"] = facts
    data[section] = payload
    path.write_text(json.dumps(data, indent=2))
    return path


class Panel(NamedTuple):
    """One bar chart: a group of bars per case, one bar per implementation."""

    groups: list[str]
    series: dict[str, list[float]]  # seconds; NaN for a bar that was not measured
    ylabel: str
    title: str
    notes: list[str] | None = None  # written above each group, e.g. a ratio
    scale: float = 1e3  # seconds to the unit of ylabel
    bar_notes: dict[str, list[str]] | None = None  # written above single bars
    log: bool = True  # log scale (wide ranges) or linear from 0


def bar_plot(path: Path, *panels: Panel) -> Path | None:
    """Grouped bars, one panel beside the other; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: plot skipped")
        return None
    widths = [max(4.0, 1.3 * len(panel.groups)) for panel in panels]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(6.0, sum(widths)), 4.2), width_ratios=widths, squeeze=False
    )
    for ax, panel in zip(axes[0], panels):
        width = 0.8 / max(len(panel.series), 1)
        for i, (name, values) in enumerate(panel.series.items()):
            xs = np.arange(len(panel.groups)) + i * width
            heights = [v * panel.scale if v == v else 0 for v in values]
            ax.bar(xs, heights, width, label=name)
            for x, height, note in zip(xs, heights, (panel.bar_notes or {}).get(name, [])):
                ax.annotate(note, (x, height * 1.08), ha="center", fontsize=7)
        centres = np.arange(len(panel.groups)) + 0.4 - width / 2
        ax.set_xticks(centres)
        ax.set_xticklabels(panel.groups, rotation=30, ha="right", fontsize=8)
        if panel.log:
            ax.set_yscale("log")
        ax.set(ylabel=panel.ylabel, title=panel.title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        top = max(v * panel.scale for values in panel.series.values() for v in values if v == v)
        ax.set_ylim(top=top * 4 if panel.log else top * 1.5)
        for x, note in zip(centres, panel.notes or []):
            ax.annotate(note, (x, top * (1.6 if panel.log else 1.1)), ha="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
