"""Seeded mutants of a checkpoint, of images and of IDX files, each through xpnet's readers.

Run by ``tests/test_hostile_files.py`` in a process of its own under an address-space cap
(``RLIMIT_AS``), so a reader that allocated what a file claims rather than what it holds
would fail with ``MemoryError`` instead of passing. Prints one JSON object: for each kind
of mutant, how many loaded, how many were refused with the documented error and one
line, and every escape (any other outcome) with its exception.

    python tests/hostile_worker.py OUT_DIR SEED COUNT
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import random
import struct
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xpnet import models
from xpnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from xpnet.cli import main
from xpnet.datasets import IDXError, read_idx

SHAPE = (1, 28, 28)
ODD_VALUES = [None, "x", -1, 0, 1, 3, 2**31, 2**40, 1.5, float("inf"), [], {}, [3, 3],
              [0, 0], [2**31, 1], True, {"type": "Conv2d", "config": {}}]  # fmt: skip


def flip_bytes(rng: random.Random, data: bytes, most: int) -> bytes:
    """``data`` with 1 to ``most`` bytes at random places set to random values."""
    flipped = bytearray(data)
    for _ in range(rng.randint(1, most)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    return bytes(flipped)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def with_meta(arrays: dict[str, np.ndarray], text: str) -> bytes:
    return npz_bytes({**arrays, "meta": np.frombuffer(text.encode(), dtype=np.uint8)})


def layer_mutation(rng: random.Random, meta: dict[str, Any]) -> None:
    """One change to one layer of the architecture: its type, its config, one field."""
    layers = meta["architecture"]["config"]["layers"]
    layer = rng.choice(layers)
    roll = rng.random()
    if roll < 0.15:
        layer["config"] = rng.choice(["str", 5, [], None, [1, 2]])
    elif roll < 0.3:
        layer["type"] = rng.choice(["Nope", 5, None, "os.system", "Sequential", "Residual"])
    elif roll < 0.4:
        layer.pop(rng.choice(["type", "config"]), None)
    elif roll < 0.5:
        layers.insert(rng.randrange(len(layers) + 1), copy.deepcopy(rng.choice(layers)))
    elif roll < 0.55:
        layers.pop(rng.randrange(len(layers)))
    elif isinstance(layer.get("config"), dict) and layer["config"]:
        layer["config"][rng.choice(list(layer["config"]))] = rng.choice(ODD_VALUES)
    else:
        layer["config"] = {"extra": rng.choice(ODD_VALUES)}


def checkpoint_mutants(rng: random.Random, good: bytes, count: int) -> list[tuple[str, bytes]]:
    with np.load(io.BytesIO(good)) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    mutants: list[tuple[str, bytes]] = []
    for _ in range(count):
        mutants.append(("byte flips", flip_bytes(rng, good, 8)))
        mutants.append(("truncations", good[: rng.randrange(len(good))]))
        changed = copy.deepcopy(meta)
        layer_mutation(rng, changed)
        mutants.append(("layer metadata", with_meta(arrays, json.dumps(changed))))
        changed = copy.deepcopy(meta)
        key = rng.choice(["architecture", "state", "format", "optimizer", "input_shape"])
        changed[key] = rng.choice([*ODD_VALUES, [1, 100000, 100000], [1, 2, 2]])
        mutants.append(("top-level metadata", with_meta(arrays, json.dumps(changed))))
        name = rng.choice([key for key in arrays if key.startswith("model/")])
        value = arrays[name]
        swapped = rng.choice([
            value.astype(rng.choice([np.int8, np.float64, np.uint16, np.bool_])),
            value.reshape(-1), value[..., :1], np.zeros((0,), np.float32),
            np.zeros((2**10, 2**10), np.float32), value.astype("S4"),
        ])  # fmt: skip
        mutants.append(("weights of another dtype or shape", npz_bytes({**arrays, name: swapped})))
    for depth in (65, 900, 100_000):
        nested = '{"type": "Sequential", "config": {"layers": [' * depth + "]}}" * depth
        text = f'{{"format": 1, "architecture": {nested}, "state": {{}}}}'
        mutants.append(("deep nesting", with_meta(arrays, text)))
    mutants.append(("deep nesting", with_meta(arrays, "[" * 100_000 + "]" * 100_000)))
    for huge in (2**31, 2**40):
        changed = copy.deepcopy(meta)
        changed["architecture"]["config"]["layers"][0]["config"]["out_channels"] = huge
        mutants.append(("huge sizes", with_meta(arrays, json.dumps(changed))))
    changed = copy.deepcopy(meta)
    for layer in changed["architecture"]["config"]["layers"]:
        if layer["type"] == "Conv2d":
            layer["config"]["stride"] = [9, 9]  # leaves a map too small for what follows
    mutants.append(("spec that cannot run", with_meta(arrays, json.dumps(changed))))
    changed = copy.deepcopy(meta)
    changed["architecture"]["config"]["layers"][0]["config"]["padding"] = [2**20, 2**20]
    mutants.append(("huge sizes", with_meta(arrays, json.dumps(changed))))
    mutants.append(("huge .npy header", huge_npy_header(arrays)))
    mutants.append(("members claiming more than the file", inflated_claim(good)))
    mutants.append(("pickled object arrays", npz_bytes(
        {**arrays, "model/0.bias": np.array([{"a": 1}], dtype=object)}
    )))  # fmt: skip
    return mutants


def huge_npy_header(arrays: dict[str, np.ndarray]) -> bytes:
    """A member whose header claims a (100000, 100000) float32 array over 64 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.save(member, value)
            data = member.getvalue() if key != "model/0.weight" else header.getvalue() + bytes(64)
            archive.writestr(f"{key}.npy", data)
    return buffer.getvalue()


def inflated_claim(good: bytes) -> bytes:
    """The archive with one central-directory entry claiming 2**31 bytes uncompressed."""
    data = bytearray(good)
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = struct.pack("<I", 2**31)
    return bytes(data)


def png_bytes(width: int, height: int) -> bytes:
    """A small gray PNG; its IHDR then patched to claim ``width`` x ``height``."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8), 200).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def image_mutants(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    good = png_bytes(8, 8)
    mutants = [("image: claims 20000 x 20000", png_bytes(20000, 20000)),
               ("image: claims 4097 x 4097", png_bytes(4097, 4097)),
               ("image: empty", b""), ("image: not an image", b"hello")]  # fmt: skip
    for _ in range(count):
        mutants.append(("image: byte flips", flip_bytes(rng, good, 6)))
        mutants.append(("image: truncations", good[: rng.randrange(len(good))]))
    return mutants


def idx_mutants(rng: random.Random, count: int) -> list[tuple[str, bytes]]:
    good = bytes([0, 0, 8, 1]) + struct.pack(">I", 50) + bytes(range(50))
    mutants = [("idx: claims 2**62 bytes", gzip.compress(bytes([0, 0, 8, 2]) + struct.pack(">II", 2**31, 2**31) + bytes(1000))),
               ("idx: inflates past its claim", gzip.compress(good + bytes(50_000_000))),
               ("idx: not gzip", b"\x1f\x8b" + bytes(30))]  # fmt: skip
    packed = gzip.compress(good)
    for _ in range(count):
        mutants.append(("idx: byte flips", gzip.compress(flip_bytes(rng, good, 1))))
        mutants.append(("idx: truncations", packed[: rng.randrange(len(packed))]))
    return mutants


def outcome(call: Callable[[], Any], refusal: type[BaseException], path: Path) -> str:
    """ "loaded", "refused" (the documented error, one line naming the file) or "ESCAPE ..."."""
    try:
        call()
    except refusal as exc:
        text = str(exc)
        if "\n" in text or str(path) not in text:
            return f"ESCAPE {type(exc).__name__} not one line naming the file: {text[:200]}"
        return "refused"
    except BaseException as exc:
        return f"ESCAPE {type(exc).__name__}: {str(exc)[:200]}"
    return "loaded"


def cli_outcome(argv: list[str]) -> str:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except BaseException as exc:
        return f"ESCAPE {type(exc).__name__}: {str(exc)[:200]}"
    lines = err.getvalue().count("\n")
    if code == 2 and lines == 1:
        return "refused"
    return "loaded" if code == 0 else f"ESCAPE exit {code} with {lines} lines"


def run_model(path: Path) -> None:
    """Load, then run the model on two images: a loaded checkpoint must work."""
    ckpt = load_checkpoint(path, backend="numpy", input_shape=SHAPE)
    ckpt.model.eval()(np.zeros((2, *SHAPE), dtype=np.float32))


def main_worker(out: Path, seed: int, count: int) -> dict[str, Any]:
    rng = random.Random(seed)
    model = models.build("mnist_cnn", seed=seed, backend="numpy")
    good_path = save_checkpoint(out / "good.npz", model, input_shape=SHAPE)
    good = good_path.read_bytes()
    image_dir = out / "images"
    image_dir.mkdir()
    tally: dict[str, Counter[str]] = {}
    escapes: list[str] = []

    def record(kind: str, result: str) -> None:
        tally.setdefault(kind, Counter())[result.split(" ")[0]] += 1
        if result.startswith("ESCAPE"):
            escapes.append(f"{kind}: {result}")

    for index, (kind, data) in enumerate(checkpoint_mutants(rng, good, count)):
        path = out / f"mutant-{index}.npz"
        path.write_bytes(data)
        record(kind, outcome(lambda path=path: run_model(path), CheckpointError, path))
        if index % 10 == 0:  # and through the CLI: exit 2, one line
            record(f"{kind} (xpnet predict)", cli_outcome(["predict", str(path), str(good_path)]))
    checkpoint = out / "good.npz"
    for index, (kind, data) in enumerate(image_mutants(rng, count // 4)):
        path = image_dir / f"image-{index}.png"
        path.write_bytes(data)
        record(kind, cli_outcome(["predict", str(checkpoint), str(path)]))
    for index, (kind, data) in enumerate(idx_mutants(rng, count // 4)):
        path = out / f"idx-{index}-ubyte.gz"
        path.write_bytes(data)
        record(kind, outcome(lambda path=path: read_idx(path), IDXError, path))
    return {"tally": {kind: dict(counts) for kind, counts in tally.items()}, "escapes": escapes}


if __name__ == "__main__":
    result = main_worker(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))
