"""Markdown tables from a results file, for benchmarks/README.md.

    python benchmarks/report.py results/<machine>-<date>.json

Prints the per-layer table (ops), the MNIST table (mnist) and the step profile (profile),
each section that the file holds, so the README quotes the file and nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def ops_table(ops: dict[str, Any]) -> list[str]:
    impls = list(ops["cases"][0]["times"])
    ratio_names = list(ops["cases"][0]["ratios"])
    lines = [
        "| case | " + " | ".join(f"{i} ms" for i in impls) + " | " + " | ".join(ratio_names) + " |",
        "|---" * (1 + len(impls) + len(ratio_names)) + "|",
    ]
    for case in ops["cases"]:
        times = " | ".join(ms(case["times"][i]["median_s"]) for i in impls)
        ratios = " | ".join(f"{case['ratios'][r]:.2f}" for r in ratio_names)
        lines.append(f"| {case['case']} | {times} | {ratios} |")
    return lines


def mnist_table(mnist: dict[str, Any]) -> list[str]:
    results = mnist["results"]
    lines = [
        "| implementation | step b128 ms [q1, q3] | epoch s [min, max] | accuracy after epochs 1, 2 | time to 99% s |",
        "|---|---|---|---|---|",
    ]
    for impl, r in results.items():
        step = r["step_b128"]
        epoch = (
            f"{r['epoch_median_s']:.2f} [{r['epoch_spread_s'][0]:.2f}, {r['epoch_spread_s'][1]:.2f}]"
            if "epoch_median_s" in r
            else "-"
        )
        accuracy = ", ".join(f"{a:.2%}" for a in r.get("test_accuracy_per_epoch", [])) or "-"
        reached = r.get("time_to_99_s")
        lines.append(
            f"| {impl} | {ms(step['median_s'])} [{ms(step['q1_s'])}, {ms(step['q3_s'])}] "
            f"| {epoch} | {accuracy} | {'-' if reached is None else f'{reached:.1f}'} |"
        )
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in mnist["ratios"].items()]
    return lines


def profile_tables(profile: dict[str, Any]) -> list[str]:
    lines = ["| layer, in the step | generic ms | fast ms | generic / fast |", "|---|---|---|---|"]
    for name, row in profile["layers_ms"].items():
        lines.append(
            f"| {name} | {row['generic']:.3f} | {row['fast']:.3f} | {row['generic'] / row['fast']:.2f} |"
        )
    lines += ["", "| conv phase | generic ms | fast ms |", "|---|---|---|"]
    for name, row in profile["conv_phases_ms"].items():
        generic, fast = row.get("generic"), row.get("fast")
        lines.append(
            f"| {name} | {'-' if generic is None else f'{generic:.3f}'} "
            f"| {'-' if fast is None else f'{fast:.3f}'} |"
        )
    if profile.get("torch_ops_ms"):
        lines += ["", "| PyTorch op (same step) | ms per step |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in profile["torch_ops_ms"].items()]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    data = json.loads(args.results.read_text())
    machine = data["machine"]
    print(
        f"`{args.results.name}`: {machine['cpu']}, {machine['cpu_count']} CPUs, {machine['date']}"
    )
    print(f"versions {machine['versions']}, BLAS {machine.get('blas')}, env {machine.get('env')}\n")
    for section, table in (("ops", ops_table), ("mnist", mnist_table), ("profile", profile_tables)):
        if section in data:
            print(f"### {section}\n")
            print("\n".join(table(data[section])) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
