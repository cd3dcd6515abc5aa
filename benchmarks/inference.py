"""Inference speed side by side: xpnet ``predict`` (NumPy, with and without Numba), ONNX
Runtime on the exported file and PyTorch eager (same weights), 2 threads each.

For ``mnist_cnn`` and ``mnist_resnet``: latency at batch 1 (median of 200 calls) and
throughput on 10,000 images in one call (median of 5 calls; xpnet's ``predict`` takes them
in its default batches of 1,000). Each implementation runs in its own
process (``XPNET_NUMBA=0`` needs a fresh one; thread settings are per process).

    python benchmarks/inference.py           # JSON + PNG into benchmarks/results/
    python benchmarks/inference.py --quick   # 20 calls / 1 call (CI smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Panel, bar_plot, median_ms, write_results

IMPLS = ("xpnet", "xpnet-no-numba", "onnxruntime", "torch")
MODELS = ("mnist_cnn", "mnist_resnet")
THREADS = "2"
MANY = 10_000
"""Images in the throughput call."""


def measure(impl: str, model_name: str, onnx_path: str, quick: bool) -> dict[str, float]:
    """Latency (batch 1, ms) and throughput (10,000 images in one call, images/s) of one
    implementation."""
    from xpnet import models

    model = models.build(model_name, seed=0, backend="numpy").eval()
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)
    count = 200 if quick else MANY  # the smoke run's throughput is for show only
    many = rng.standard_normal((count, 1, 28, 28)).astype(np.float32)
    if impl.startswith("xpnet"):
        from xpnet.train import predict

        def run(x: np.ndarray) -> Any:
            return predict(model, x, batch_size=1000)
    elif impl == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(THREADS)
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> Any:
            return session.run(["logits"], {"images": x})[0]
    else:
        import torch

        from mnist import torch_twin

        torch.set_num_threads(int(THREADS))
        twin = torch_twin(model, "cpu").eval()

        def run(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return torch.softmax(twin(torch.from_numpy(x)), dim=1).numpy()

    latency_ms = median_ms(lambda: run(one), 20 if quick else 200, warmup=2)
    batch_ms = median_ms(lambda: run(many), 1 if quick else 5, warmup=2)
    return {"latency_ms": latency_ms, "throughput_per_s": count / (batch_ms / 1e3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls (CI smoke run)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--child", nargs=3, metavar=("IMPL", "MODEL", "ONNX"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child, quick=args.quick)))
        return 0
    from xpnet import models
    from xpnet.onnx import export

    rows: dict[str, dict[str, Any]] = {}
    folder = Path(tempfile.mkdtemp())
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "OPENBLAS_NUM_THREADS": THREADS,
           "NUMBA_NUM_THREADS": THREADS}  # fmt: skip
    print(f"{'model':<14}{'implementation':<16}{'batch-1 ms':>12}{'images/s @10k':>16}")
    for name in MODELS:
        path = export(models.build(name, seed=0, backend="numpy"), folder / f"{name}.onnx",
                      input_shape=(1, 28, 28))  # fmt: skip
        for impl in IMPLS:
            child_env = {**env, "XPNET_NUMBA": "0"} if impl == "xpnet-no-numba" else env
            command = [sys.executable, __file__, "--child", impl, name, str(path)]
            result = subprocess.run(command + (["--quick"] if args.quick else []),
                                    capture_output=True, text=True, env=child_env)  # fmt: skip
            if result.returncode != 0:
                print(f"{name:<14}{impl:<16} failed: {result.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows[f"{name}/{impl}"] = row
            print(f"{name:<14}{impl:<16}{row['latency_ms']:>12.3f}{row['throughput_per_s']:>16.0f}")
    payload = {"quick": args.quick, "threads": int(THREADS), "results": rows}
    out = write_results("inference", payload, args.out)
    _plot(rows, out.with_name(f"{out.stem}-inference.png"))
    print(f"\nwrote {out}")
    return 0


def _plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    def series(key: str) -> dict[str, list[float]]:
        return {
            impl: [rows.get(f"{name}/{impl}", {}).get(key, float("nan")) for name in MODELS]
            for impl in IMPLS
        }

    bar_plot(
        path,
        Panel(list(MODELS), series("latency_ms"), "ms", "batch-1 latency (lower is better)",
              scale=1.0),
        Panel(list(MODELS), series("throughput_per_s"), "images/s",
              "images/s, 10,000 in one call (higher is better)", scale=1.0),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
