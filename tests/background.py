"""Scripts that tests run as subprocesses, started early on a background thread.

A smoke test of a benchmark script spends its seconds in another process while the rest
of the suite keeps one core busy in this one. So the scripts of the selected tests are
queued when collection ends (``pytest_collection_finish`` in ``conftest.py`` calls each
test module's ``start_in_background``), run one at a time on one background thread, and
each test waits for its own run (:func:`result`) and asserts on it as before: the
commands and the assertions are unchanged, only the start moves earlier.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

Command = Callable[[Path], subprocess.CompletedProcess]
"""A run given a fresh, empty output folder."""

_runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background-script")
_runs: dict[str, tuple[Future[subprocess.CompletedProcess], Path]] = {}
_root = Path(tempfile.mkdtemp(prefix="xpnet-tests-"))
atexit.register(shutil.rmtree, _root, ignore_errors=True)


def start(key: str, command: Command) -> None:
    """Queue ``command`` under ``key`` (once), with a fresh empty folder of its own."""
    if key not in _runs:
        out = _root / f"run-{len(_runs)}"
        out.mkdir()
        _runs[key] = (_runner.submit(command, out), out)


def result(key: str, command: Command) -> tuple[subprocess.CompletedProcess, Path]:
    """The finished run of ``key`` and its folder (queued now if it was not already)."""
    start(key, command)
    future, out = _runs[key]
    return future.result(), out


def cancel_pending() -> None:
    """Drop the queued runs that have not started (the running one finishes)."""
    _runner.shutdown(wait=False, cancel_futures=True)
