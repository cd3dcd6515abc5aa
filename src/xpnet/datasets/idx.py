"""A reader for the IDX format of MNIST, strict about what it accepts.

Big-endian header: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one 32-bit size per dimension, then the data, row-major. A file that is
truncated, corrupt, too long or not gzip where it should be raises :class:`IDXError`
naming the file: never a silent reshape.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08
MAX_IDX_BYTES = 1 << 30
"""The largest IDX data a ``.gz`` file may claim (1 GiB; MNIST's training images: 47 MB)."""


class IDXError(ValueError):
    """An IDX file is malformed, truncated or fails its checksum."""


def read_idx_bytes(path: str | Path) -> bytes:
    """The uncompressed bytes of an IDX file (``.gz`` is decompressed, no further than the
    size its header claims, plus one byte to tell a file that is too long)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"IDX file not found: {path}") from None
    if path.suffix != ".gz":
        return raw
    try:
        return _gunzip_claimed(raw)
    except IDXError as exc:
        raise IDXError(f"{path}: {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(f"{path}: not a valid gzip file ({exc})") from None


def _gunzip_claimed(raw: bytes) -> bytes:
    """Decompress gzip ``raw`` up to the IDX header's claimed size + 1 byte: a small file
    whose header claims terabytes (or that inflates without end) costs no memory."""
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = bytearray(stream.decompress(raw, 4 + 4 * 255))  # room for any header
    limit = len(data)
    if len(data) >= 4 and len(data) >= 4 + 4 * data[3]:
        ndim = data[3]
        shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
        limit = 4 + 4 * ndim + math.prod(shape) + 1
        if limit > MAX_IDX_BYTES:
            raise IDXError(
                f"the header's shape {tuple(shape)} claims {limit - 1:,} bytes; xpnet reads "
                f"IDX files of at most {MAX_IDX_BYTES:,} bytes"
            )
    while len(data) < limit and not stream.eof:
        if not stream.unconsumed_tail:
            raise EOFError("compressed file ended before the end-of-stream marker")
        data += stream.decompress(stream.unconsumed_tail, min(limit - len(data), 1 << 24))
    return bytes(data)


def parse_idx(data: bytes, name: str, *, expected_ndim: int | None = None) -> np.ndarray:
    """Parse uncompressed IDX ``data``; ``name`` is used in error messages.

    Parameters
    ----------
    data : bytes
        The whole uncompressed file.
    name : str
        What the error messages call it (a path).
    expected_ndim : int, optional
        Refuse another number of dimensions.

    Returns
    -------
    numpy.ndarray
        uint8, of the header's shape, a view of ``data``.
    """
    if len(data) < 4:
        raise IDXError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code != UNSIGNED_BYTE or ndim == 0:
        magic = int.from_bytes(data[:4], "big")
        raise IDXError(
            f"{name}: bad magic number 0x{magic:08x}; expected 0x000008NN "
            "(unsigned bytes, NN dimensions)"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXError(f"{name}: expected {expected_ndim} dimensions; the header says {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: truncated header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        state = "truncated" if got < expected else "too long"
        raise IDXError(
            f"{name}: {state}: the header's shape {shape} needs {expected} data bytes; "
            f"the file has {got}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(
    path: str | Path, *, expected_ndim: int | None = None, md5: str | None = None
) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 NumPy array.

    Parameters
    ----------
    path : path
        The file; a ``.gz`` suffix means gzip-compressed.
    expected_ndim : int, optional
        Reject files with another number of dimensions.
    md5 : str, optional
        Expected md5 of the uncompressed content.

    Returns
    -------
    numpy.ndarray
        uint8, of the header's shape.

    Raises
    ------
    IDXError
        Naming the file: bad gzip, bad magic number, wrong dimensions, truncated or
        over-long data, or a checksum mismatch.
    """
    data = read_idx_bytes(path)
    if md5 is not None:
        digest = hashlib.md5(data).hexdigest()
        if digest != md5:
            raise IDXError(f"{path}: checksum mismatch: expected md5 {md5}, got {digest}")
    return parse_idx(data, str(path), expected_ndim=expected_ndim)
