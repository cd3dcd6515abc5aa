"""Files written atomically: a temporary file in the same folder, then ``os.replace``, so a
crash or Ctrl-C never leaves half a file where the last good one was. The new file gets
the permissions any file created there would get (0666 less the umask), not the private
0600 of the temporary file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where it is shown, else set and put back)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` with a binary handle on a temporary file beside ``path``, then move it
    to ``path`` with the permissions a new file there would have. ``OSError`` if the
    folder cannot be written; the temporary file is removed on any failure."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
