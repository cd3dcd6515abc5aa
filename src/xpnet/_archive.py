"""Reading an ``.npz`` archive from a stranger: nothing allocated beyond what the file holds.

``np.load`` trusts each member's ``.npy`` header: a header of a few bytes claiming a
(100000, 100000) array asks for 40 GB before the short data is noticed. Here every
member's header is read first and checked against the bytes the member holds, the
members' uncompressed sizes together against the file's size (:data:`MAX_EXPANSION`),
and only plain numeric dtypes are accepted (no pickled objects). Anything else is one
:class:`ArchiveError` line.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from typing import IO

import numpy as np

MAX_EXPANSION = 64
"""The members may hold at most this many times the archive's size uncompressed (plus
:data:`SLACK`): ``np.savez`` stores its members uncompressed (1x); ``np.savez_compressed``
of float weights shrinks them by far less than 64x."""
SLACK = 1 << 20
MAX_MEMBERS = 100_000
MAX_HEADER_BYTES = 10_000
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned ints, floats


class ArchiveError(ValueError):
    """The archive is damaged, or claims more than it holds."""


def read_arrays(handle: IO[bytes]) -> dict[str, np.ndarray]:
    """Every ``name.npy`` member of the zip archive open in ``handle`` as a NumPy array.

    Raises :class:`ArchiveError` (a ``ValueError``) with what is wrong: not a zip archive,
    truncated or corrupt, a member that is not a plain numeric ``.npy`` array, or sizes
    that do not add up.
    """
    size = os.fstat(handle.fileno()).st_size
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise ArchiveError(f"has {len(members)} members (at most {MAX_MEMBERS})")
            claimed = sum(member.file_size for member in members)
            if claimed > MAX_EXPANSION * size + SLACK:
                raise ArchiveError(
                    f"claims {claimed:,} bytes uncompressed from a file of "
                    f"{size:,} bytes (at most {MAX_EXPANSION}x)"
                )
            return {_key(m.filename): _read_member(archive, m) for m in members}
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error) as exc:
        raise ArchiveError(f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    except (NotImplementedError, RuntimeError, ValueError, UnicodeError) as exc:
        raise ArchiveError(f"is unreadable ({type(exc).__name__}: {exc})") from None


def _key(filename: str) -> str:
    if not filename.endswith(".npy"):
        raise ArchiveError(f"has a member {filename!r} that is not an .npy array")
    return filename.removesuffix(".npy")


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    """One member, its header checked against its size before its data is read."""
    name = member.filename
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read_header is None:
            raise ArchiveError(f"has a member {name!r} of unknown .npy format version {version}")
        shape, fortran_order, dtype = read_header(stream, max_header_size=MAX_HEADER_BYTES)
        if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
            raise ArchiveError(f"has a member {name!r} of dtype {dtype}, not a plain number type")
        needed = math.prod(shape) * dtype.itemsize
        held = member.file_size - stream.tell()
        if needed != held:
            raise ArchiveError(
                f"has a member {name!r} whose header claims shape {shape} of {dtype} "
                f"({needed:,} bytes) but it holds {held:,} bytes"
            )
        data = bytearray(stream.read(needed))  # writable, as np.load's arrays are
    if len(data) != needed:
        raise ArchiveError(f"has a truncated member {name!r} ({len(data):,} of {needed:,} bytes)")
    flat = np.frombuffer(data, dtype=dtype)
    return flat.reshape(shape, order="F") if fortran_order else flat.reshape(shape)
