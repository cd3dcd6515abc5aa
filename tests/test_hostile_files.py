"""Damaged and crafted files: every checkpoint, image and IDX file is loaded or refused
with one line naming it, and nothing allocates more than the file holds.

The mutants (``tests/hostile_worker.py``, seeded) go through xpnet's readers in a process
of their own whose address space is capped at :data:`MEMORY_CAP`: a reader that believed
a header of a few bytes (a (100000, 100000) array, ``out_channels`` of 2**31, an image of
20000 x 20000 pixels, an IDX file claiming 2**62 bytes) would hit ``MemoryError`` there
and show up as an escape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "hostile_worker.py"
MEMORY_CAP = 3 << 30  # bytes of address space: the interpreter, NumPy, xpnet and PIL fit
MUTANTS_PER_FAMILY = 100


def _capped() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps memory on Linux")
def test_mutated_files_load_or_give_one_line_within_a_memory_cap(tmp_path):
    pytest.importorskip("PIL")
    with warnings.catch_warnings():
        # preexec_fn forks; JAX (imported by earlier tests) warns at every fork, while the
        # child here only sets its limit and starts the worker
        warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
        run = subprocess.run(
            [sys.executable, str(WORKER), str(tmp_path), "0", str(MUTANTS_PER_FAMILY)],
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=_capped,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "XPNET_NUMBA": "0"},
        )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    tally = result["tally"]
    assert result["escapes"] == [], "\n".join(result["escapes"][:20])
    for kind in ("huge sizes", "huge .npy header", "deep nesting", "spec that cannot run",
                 "members claiming more than the file", "pickled object arrays",
                 "image: claims 20000 x 20000", "idx: claims 2**62 bytes",
                 "idx: inflates past its claim"):  # fmt: skip
        assert tally[kind] == {"refused": tally[kind]["refused"]}, (kind, tally[kind])
    for kind in ("byte flips", "truncations", "layer metadata", "top-level metadata"):
        assert sum(tally[kind].values()) == MUTANTS_PER_FAMILY
        assert tally[kind].get("refused", 0) > 0, (kind, tally[kind])
    assert sum(sum(counts.values()) for counts in tally.values()) > 600


def test_a_checkpoint_records_its_input_shape_and_a_huge_size_is_refused_unbuilt(tmp_path):
    import numpy as np

    from xpnet import models
    from xpnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    model = models.build("small_cnn", seed=0, backend="numpy", image_shape=(1, 12, 12))
    path = save_checkpoint(tmp_path / "small.npz", model, input_shape=(1, 12, 12))
    loaded = load_checkpoint(path)
    assert loaded.meta["input_shape"] == [1, 12, 12]
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    first = meta["architecture"]["config"]["layers"][0]["config"]
    channels, first["out_channels"] = first["out_channels"], 2**31
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "huge.npz", **arrays)
    with pytest.raises(
        CheckpointError, match=r"huge\.npz: .*0\.weight must have shape \(2147483648"
    ):
        load_checkpoint(tmp_path / "huge.npz")
    first["out_channels"] = channels
    meta["input_shape"] = [1, 3, 3]  # too small for the net's layers
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "small-input.npz", **arrays)
    with pytest.raises(CheckpointError, match=r"cannot run on its input shape \(1, 3, 3\)"):
        load_checkpoint(tmp_path / "small-input.npz")


def test_cli_refuses_a_model_for_other_images_in_one_line(tmp_path, capsys):
    from xpnet import models
    from xpnet.checkpoint import save_checkpoint
    from xpnet.cli import main

    model = models.build("small_cnn", seed=0, backend="numpy", image_shape=(3, 12, 12))
    path = save_checkpoint(tmp_path / "rgb.npz", model, input_shape=(3, 12, 12))
    assert main(["evaluate", str(path), "--limit", "10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "takes images of shape (3, 12, 12)" in err


def test_the_small_mutants_in_this_process(tmp_path):
    """The mutants that claim no large sizes, through the same readers in this process
    (so coverage sees the refusals); the capped run above covers the large claims."""
    import random

    from xpnet import models
    from xpnet.checkpoint import CheckpointError, save_checkpoint

    from . import hostile_worker as worker

    rng = random.Random(1)
    good = save_checkpoint(tmp_path / "good.npz", models.build("mnist_cnn", seed=1),
                           input_shape=worker.SHAPE).read_bytes()  # fmt: skip
    small = {"byte flips", "truncations", "layer metadata", "top-level metadata",
             "weights of another dtype or shape", "deep nesting", "pickled object arrays",
             "spec that cannot run", "members claiming more than the file"}  # fmt: skip
    outcomes = []
    for index, (kind, data) in enumerate(worker.checkpoint_mutants(rng, good, 15)):
        if kind in small:
            path = tmp_path / f"m{index}.npz"
            path.write_bytes(data)
            run = lambda p=path: worker.run_model(p)  # noqa: E731
            outcomes.append(worker.outcome(run, CheckpointError, path))
    assert not [o for o in outcomes if o.startswith("ESCAPE")], outcomes
    assert outcomes.count("refused") > 40


def test_resuming_from_damaged_optimizer_state_is_one_line(tmp_path):
    import numpy as np

    from xpnet import models, optim
    from xpnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    model = models.build("seed_cnn", seed=0)
    adam = optim.make_optimizer("adam", model.parameters(), 1e-3)
    path = save_checkpoint(tmp_path / "run.npz", model, optimizer=adam, input_shape=(1, 28, 28))
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(arrays["meta"].tobytes())
    for damaged, message in [({}, r"optimizer was None; got Adam"),
                             ({"type": "Adam"}, r"its optimizer state does not fit")]:  # fmt: skip
        meta["optimizer"] = damaged
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(tmp_path / "damaged.npz", **arrays)
        checkpoint = load_checkpoint(tmp_path / "damaged.npz")
        fresh = optim.make_optimizer("adam", checkpoint.model.parameters(), 1e-3)
        with pytest.raises(CheckpointError, match=message):
            checkpoint.restore_optimizer(fresh)
