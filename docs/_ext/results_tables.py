"""The ``xpnet-results`` directive: tables read from ``benchmarks/results/*.json`` at build.

``.. xpnet-results:: inference`` renders the newest results of that kind (one table per
OpenBLAS kernel setting measured that day), each under a line naming the machine, the
date, the versions and the file, so the figures on the performance page are never retyped.
Kinds: ``inference``, ``shapes``, ``peers``, ``mnist``, ``jax_step``, ``launches``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _newest(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    """The results files holding ``kind`` from the newest date that has one, oldest first."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        if "quick" in path.name:
            continue
        data = json.loads(path.read_text())
        if kind in data and not data[kind].get("quick", False):
            found.append((data["machine"]["date"][:10], path, data))
    if not found:
        raise ValueError(f"no results of kind {kind!r} in {RESULTS}")
    last = max(date for date, _, _ in found)
    return [(path, data) for date, path, data in found if date == last]


def _blas(machine: dict[str, Any]) -> str:
    kernels = {
        b.get("architecture")
        for b in machine.get("blas", [])
        if b.get("internal_api") == "openblas"
    }
    kernels.discard(None)
    if kernels:
        return "OpenBLAS kernels " + "/".join(sorted(kernels))
    coretype = machine.get("env", {}).get("OPENBLAS_CORETYPE")
    return f"OPENBLAS_CORETYPE={coretype}" if coretype else "OpenBLAS's own kernels"


def _provenance(path: Path, machine: dict[str, Any], kind: str) -> str:
    blas = "" if kind == "peers" else f", {_blas(machine)}"  # its columns name both settings
    versions = ", ".join(f"{name} {v}" for name, v in machine.get("versions", {}).items())
    return (
        f"*{machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} CPUs, "
        f"{machine['date'][:10]}{blas}; {versions}* "
        f"(``benchmarks/results/{path.name}``)"
    )


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return [*lines, ""]


def _inference(data: dict[str, Any]) -> list[str]:
    results = data["inference"]["results"]
    engines = ["xpnet", "xpnet-no-numba", "torch", "onnxruntime"]
    names = ["xpnet", "xpnet without Numba", "PyTorch eager", "ONNX Runtime"]
    rows = []
    for model in sorted({key.split("/")[0] for key in results}):
        row_ms, row_ips = [f"``{model}``, one image (ms)"], [f"``{model}``, images/s in one call"]
        for engine in engines:
            r = results.get(f"{model}/{engine}", {})
            row_ms.append(f"{r['latency_ms']:.3f}" if "latency_ms" in r else "")
            row_ips.append(f"{r['throughput_per_s']:,.0f}" if "throughput_per_s" in r else "")
        rows += [row_ms, row_ips]
    return _table(["", *names], rows)


def _shapes(data: dict[str, Any]) -> list[str]:
    summary = data["shapes"]["summary"]
    worst = summary["worst"]
    cell = (f"{worst['kernel']}x{worst['kernel']}, padding {worst['padding']}, stride "
            f"{worst['stride']}, {worst['c_in']}→{worst['c_out']}, {worst['side']}x{worst['side']}, "
            f"batch {worst['batch']}")  # fmt: skip
    return _table(
        ["cells", "over 1.0x (slower than PyTorch)", "median xpnet / PyTorch", "worst cell"],
        [
            [
                str(summary["cells"]),
                str(summary["over_1"]),
                f"{summary['median_ratio']:.2f}x",
                f"{worst['ratio']:.2f}x ({cell})",
            ]
        ],
    )


def _peers(data: dict[str, Any]) -> list[str]:
    peers = data["peers"]
    ratios = peers["ratio_to_torch"]
    columns = sorted(next(iter(ratios.values())))  # PyTorch's own row (1.00x) is left out
    rows = [
        [f"``{lib}``", *(f"{ratios[lib].get(c, float('nan')):.2f}x" for c in columns)]
        for lib in ratios
        if lib != "torch"
    ]  # fmt: skip (PyTorch's own row is 1.00x)
    return _table(["training step / PyTorch's", *columns], rows)


def _mnist(data: dict[str, Any]) -> list[str]:
    mnist = data["mnist"]
    rows = []
    for name, r in mnist["results"].items():
        step = r.get("step_b128", {}).get("median_s")
        accuracy = r.get("test_accuracy_per_epoch", [])
        rows.append([f"``{name}``", f"{step * 1e3:.1f}" if step else "",
                     f"{r['epoch_median_s']:.1f}" if "epoch_median_s" in r else "",
                     f"{accuracy[-1]:.2%}" if accuracy else ""])  # fmt: skip
    header = [f"``{mnist['model']}``, batch {mnist['batch_size']}", "step (ms, median)",
              "epoch (s, median)", f"test accuracy after {mnist['epochs']} epochs"]  # fmt: skip
    return _table(header, rows)


def _jax_step(data: dict[str, Any]) -> list[str]:
    step = data["jax_step"]
    rows = [[f"``{name}``", f"{t['median_s'] * 1e3:.1f}", f"{t['q1_s'] * 1e3:.1f}-{t['q3_s'] * 1e3:.1f}"]
            for name, t in step["times"].items()]  # fmt: skip
    return _table(
        [f"``{step['model']}`` step, batch {step['batch']}", "median (ms)", "quartiles (ms)"], rows
    )


def _launches(data: dict[str, Any]) -> list[str]:
    steps = data["launches"]["steps"]
    rows = [[f"``{name}``", str(s["xpnet"]["ops"]), str(s["xpnet"]["syncs"]), str(s["torch"]["ops"]),
             str(s["torch"]["syncs"])] for name, s in steps.items()]  # fmt: skip
    return _table(
        ["step", "xpnet operations", "xpnet syncs", "PyTorch operations", "PyTorch syncs"], rows
    )


KINDS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "inference": _inference,
    "shapes": _shapes,
    "peers": _peers,
    "mnist": _mnist,
    "jax_step": _jax_step,
    "launches": _launches,
}


class ResultsDirective(SphinxDirective):
    """``.. xpnet-results:: KIND``: the newest results of KIND as tables."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0]
        if kind not in KINDS:
            raise self.error(f"xpnet-results: unknown kind {kind!r}; one of {sorted(KINDS)}")
        lines: list[str] = []
        for path, data in _newest(kind):
            self.env.note_dependency(str(path))
            lines += [_provenance(path, data["machine"], kind), "", *KINDS[kind](data)]
            for plot in (f"{path.stem}-{kind.replace('_', '-')}.png", f"{path.stem}.png"):
                if (RESULTS / plot).exists():
                    here = Path(self.env.doc2path(self.env.docname)).parent
                    uri = os.path.relpath(RESULTS / plot, here)
                    lines += [f".. image:: {uri}", f"   :alt: {kind}, {path.stem}", ""]
                    break
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source=f"xpnet-results {kind}"), self.content_offset, container
        )
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("xpnet-results", ResultsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
