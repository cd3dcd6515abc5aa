"""What a training run needs around its steps: Ctrl-C deferred to the end of the current
step, and the progress bar (tqdm, where installed)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a flag checked between steps (a second one interrupts now)."""
    requested = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if requested[0]:
            raise KeyboardInterrupt
        requested[0] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def progress_bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar over an epoch's ``total`` steps from ``initial``; ``None`` without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    # disable=None: quiet when stdout is not a terminal.
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        leave=False,
        disable=None if enabled else True,
        file=sys.stdout,
        dynamic_ncols=True,
    )
