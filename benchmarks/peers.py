"""xpnet against its peers: the same nets' training step, each library in its own process.

    python benchmarks/peers.py [--only LIB,LIB] [--rounds 2] [--coretypes native,Haswell]
                               [--nets A,B,R] [--before TREE] [--setup-only] [--quick]
                               [--out DIR]

(or ``nox -s peers``). Builds one virtualenv per peer under ``.peers/`` (kept between
runs), then, for each OpenBLAS kernel set (``native``: what OpenBLAS picks for this CPU;
``Haswell``: ``OPENBLAS_CORETYPE=Haswell``), in ``--rounds`` rounds, runs
``peer_steps.py LIBRARY NET`` in a fresh process for every library and net (A and B for
every peer; R, xpnet's residual net, for xpnet and PyTorch only), with 2
threads for every library. Writes the ``peers`` section of ``results/<machine>-<date>.json``
(every step's time, each library's version, dtypes and BLAS), a plot, and prints the
Markdown table for ``benchmarks/README.md``.

The peers and what each needs to install here (Python 3.11):

- PyTorch (``torch==2.13.0``) and xpnet: this interpreter's environment;
- Chainer 7.8.1: ``numpy<1.24`` and ``setuptools<70``, built with ``--no-build-isolation``;
- DeZero 0.0.13: ``numpy==1.23.5`` (it uses ``np.int``) and matplotlib < 3.11 (imported,
  undeclared);
- tinygrad 0.14 on its CPU device, which compiles with clang (Debian's ``clang``): a plain
  and a ``TinyJit`` row;
- Keras 3.15 on its torch backend (``channels_first``, ``jit_compile=False``), and its NumPy
  backend, which cannot train (``fit`` raises NotImplementedError) and needs jax and scipy to
  import: that row shows the error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine_facts

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVS = ROOT / ".peers"
TORCH = os.environ.get("XPNET_TORCH", "torch==2.13.0")

# library -> (virtualenv name or None for this interpreter, install steps)
PEERS: dict[str, tuple[str | None, list[list[str]]]] = {
    "xpnet": (None, []),
    "xpnet-no-numba": (None, []),  # XPNET_NUMBA=0: without the optional compiled loops
    "xpnet-before": (None, []),  # the xpnet of --before TREE (an older commit's worktree)
    "torch": (None, []),
    "keras-torch": ("keras", [["keras==3.15.1", TORCH, "jax", "scipy", "threadpoolctl"]]),
    "keras-numpy": ("keras", []),
    "chainer": (
        "chainer",
        [
            ["numpy<1.24", "setuptools<70", "wheel", "threadpoolctl"],
            ["--no-build-isolation", "chainer==7.8.1"],
        ],
    ),
    "dezero": ("dezero", [["numpy==1.23.5", "matplotlib<3.11", "dezero==0.0.13", "threadpoolctl"]]),
    "tinygrad": ("tinygrad", [["tinygrad==0.14.0", "numpy", "threadpoolctl"]]),
    "tinygrad-jit": ("tinygrad", []),
}
NETS = ("A", "B", "R")
XPNET_AND_TORCH_ONLY = ("R",)  # mnist_resnet, rebuilt for PyTorch from xpnet's spec


def has_every_net(library: str) -> bool:
    """Whether ``library`` runs net R too (xpnet in every variant, and PyTorch)."""
    return library == "torch" or library.startswith("xpnet")


CORETYPES = ("native", "Haswell")


def python_of(env: str | None) -> str:
    return sys.executable if env is None else str(ENVS / env / "bin" / "python")


def setup(libraries: list[str]) -> dict[str, str]:
    """Create the peers' virtualenvs that are missing; returns library -> why it cannot run."""
    unusable: dict[str, str] = {}
    done: set[str] = set()
    for library in libraries:
        env, steps = PEERS[library]
        if library.startswith("tinygrad") and shutil.which("clang") is None:
            unusable[library] = "clang not found (tinygrad's CPU device compiles with it)"
            continue
        if env is None or env in done:
            continue
        done.add(env)
        marker = ENVS / env / ".installed"
        if marker.exists():
            continue
        print(f"peers: building {ENVS / env}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENVS / env)], check=True)
        pip = [python_of(env), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        try:
            for step in steps:
                subprocess.run(pip + step, check=True)
        except subprocess.CalledProcessError as error:
            unusable[library] = f"install failed: {error}"
            continue
        marker.write_text("\n".join(" ".join(step) for step in steps) + "\n")
    return unusable


def run_one(library: str, net: str, coretype: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    env["MKL_NUM_THREADS"] = "2"
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if coretype != "native":
        env["OPENBLAS_CORETYPE"] = coretype
    if library == "xpnet-no-numba":
        env["XPNET_NUMBA"] = "0"
    env["PYTHONPATH"] = str(ROOT / "src") if PEERS[library][0] is None else ""
    if library == "xpnet-before":
        env["PYTHONPATH"] = str(Path(args.before).resolve() / "src")
    command = [python_of(PEERS[library][0]), str(HERE / "peer_steps.py"), library, net]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"library": library, "net": net, "error": f"exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def paired_ratios(runs: list[dict[str, Any]], reference: str) -> dict[str, dict[str, list[float]]]:
    """Per library and ``"<net> <kernel set>"``: (library / ``reference``) of each round,
    in round order (paired ratios: the two ran in the same round)."""
    by_key = {(r["library"], r["net"], r["coretype"], r["round"]): r for r in runs}
    ratios: dict[str, dict[str, list[float]]] = {}
    for (library, net, coretype, round_), run in by_key.items():
        reference_run = by_key.get((reference, net, coretype, round_))
        if "median_ms" not in run or reference_run is None or "median_ms" not in reference_run:
            continue
        key = f"{net} {coretype}"
        ratio = run["median_ms"] / reference_run["median_ms"]
        ratios.setdefault(library, {}).setdefault(key, []).append(ratio)
    return ratios


def ratios_to_torch(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per library, net and kernel set: the median over rounds of (library / PyTorch) of
    the same round (paired ratios)."""
    return _median_of_each(paired_ratios(runs, "torch"))


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per library and ``"<net> <kernel set>"``: the median of all timed steps (ms)."""
    steps: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        if "times_ms" in run:
            key = f"{run['net']} {run['coretype']}"
            steps.setdefault(run["library"], {}).setdefault(key, []).extend(run["times_ms"])
    return _median_of_each(steps)


def _median_of_each(values: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {lib: {k: statistics.median(v) for k, v in per.items()} for lib, per in values.items()}


def table(section: dict[str, Any]) -> str:
    """The Markdown table of the README: median ms and paired ratio to PyTorch per column,
    with the range of the rounds' paired ratios where there are several rounds."""
    columns = [f"{net} {ct}" for ct in section["coretypes"] for net in section["nets"]]
    head = "| library | version | " + " | ".join(f"net {c}" for c in columns) + " | notes |"
    lines = [head, "|" + " --- |" * (len(columns) + 3)]
    for library in section["libraries"]:
        info = section["info"].get(library, {})
        cells = []
        for column in columns:
            ms = section["median_ms"].get(library, {}).get(column)
            ratio = section["ratio_to_torch"].get(library, {}).get(column)
            rounds = section.get("ratio_to_torch_rounds", {}).get(library, {}).get(column, [])
            several = len(rounds) > 1 and library != "torch"
            spread = f"; {min(rounds):.2f}-{max(rounds):.2f}" if several else ""
            cells.append("-" if ms is None else f"{ms:.1f} ms ({ratio:.2f}x{spread})")
        notes = info.get("error") or ", ".join(info.get("dtypes", []))
        lines.append(
            f"| {library} | {info.get('version', '-')} | " + " | ".join(cells) + f" | {notes} |"
        )
    return "\n".join(lines)


def plot(section: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [f"{net} {ct}" for ct in section["coretypes"] for net in section["nets"]]
    libraries = [lib for lib in section["libraries"] if lib in section["median_ms"]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(libraries), 1)
    for i, library in enumerate(libraries):
        values = [section["median_ms"][library].get(c, float("nan")) for c in columns]
        ax.bar([j + i * width for j in range(len(columns))], values, width, label=library)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))])
    ax.set_xticklabels([f"net {c}" for c in columns])
    ax.set_yscale("log")
    ax.set_ylabel("training step, batch 128 (ms, median)")
    ax.set_title("xpnet and its peers on the CPU (2 threads; lower is better)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated libraries (default: all)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--coretypes", default=",".join(CORETYPES))
    parser.add_argument("--nets", default=",".join(NETS), help="default: A,B,R")
    parser.add_argument("--steps", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 round, 3 steps, native only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="peers", help="file name suffix (default: peers)")
    parser.add_argument(
        "--before",
        type=Path,
        help="another xpnet source tree (e.g. `git worktree add /tmp/old COMMIT`): "
        "its xpnet runs as the row xpnet-before",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup, args.coretypes = 1, 3, 1, "native"
    libraries = args.only.split(",") if args.only else [p for p in PEERS if p != "xpnet-before"]
    if args.before and "xpnet-before" not in libraries:
        libraries.append("xpnet-before")
    if "xpnet-before" in libraries and not args.before:
        parser.error("the row xpnet-before needs --before TREE")
    unknown = sorted(set(libraries) - set(PEERS))
    if unknown:
        parser.error(f"--only: unknown libraries {unknown}; known: {sorted(PEERS)}")
    if "torch" not in libraries:
        libraries.insert(0, "torch")  # the ratios' denominator
    unusable = setup(libraries)
    if args.setup_only:
        print(json.dumps(unusable or "all peers ready", indent=1))
        return 0
    runs: list[dict[str, Any]] = []
    coretypes = args.coretypes.split(",")
    nets = args.nets.split(",")
    if set(nets) - set(NETS):
        parser.error(f"--nets: unknown nets {sorted(set(nets) - set(NETS))}; known: {NETS}")
    for coretype in coretypes:
        for round_ in range(args.rounds):
            for library in libraries:
                for net in nets:
                    if net in XPNET_AND_TORCH_ONLY and not has_every_net(library):
                        continue  # built for xpnet and PyTorch only: a "-" in the table
                    if library in unusable:
                        run = {"library": library, "net": net, "error": unusable[library]}
                    else:
                        run = run_one(library, net, coretype, args)
                    run.update(coretype=coretype, round=round_)
                    runs.append(run)
                    shown = f"{run['median_ms']:.1f} ms" if "median_ms" in run else run["error"]
                    print(
                        f"{coretype:8} round {round_} {library:13} net {net}: {shown}", flush=True
                    )
    info: dict[str, dict[str, Any]] = {}
    for run in runs:
        entry = info.setdefault(run["library"], {})
        for key in (
            "version",
            "source",
            "dtypes",
            "blas",
            "keras_backend",
            "torch_mkldnn",
            "error",
        ):
            if key in run and key not in entry:
                entry[key] = run[key]
    section = {
        "protocol": (
            f"batch 128, SGD momentum 0.9; {args.warmup} warm-up steps, {args.steps} timed steps "
            f"each after a 0.3 s pause; a fresh process per library, net, round and kernel set; "
            f"2 threads; {args.rounds} rounds"
        ),
        "libraries": libraries,
        "before_tree": str(args.before) if args.before else None,
        "coretypes": coretypes,
        "nets": nets,
        "median_ms": medians(runs),
        "ratio_to_torch": ratios_to_torch(runs),
        "ratio_to_torch_rounds": paired_ratios(runs, "torch"),
        "xpnet_to_before_rounds": paired_ratios(runs, "xpnet-before").get("xpnet", {}),
        "info": info,
        "runs": runs,
    }
    facts = machine_facts()
    facts.pop("blas", None)  # each run's own BLAS is in section["info"]
    facts.pop("env", None)
    section["quick"] = args.quick
    label = re.sub(r"[^a-z0-9]+", "-", f"{facts['cpu']} {facts['cpu_count']}cpu".lower())
    stem = (
        f"{label.strip('-')}-{date.today().isoformat()}-{args.tag}{'-quick' if args.quick else ''}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps({"machine": facts, "peers": section}, indent=2))
    png = path.with_suffix(".png")
    plot(section, png)
    print(f"\nwrote {path} and {png}\n")
    print(table(section))
    for column, rounds in section["xpnet_to_before_rounds"].items():
        shown = ", ".join(f"{r:.2f}" for r in rounds)
        print(f"xpnet / xpnet-before, net {column}, each round: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
