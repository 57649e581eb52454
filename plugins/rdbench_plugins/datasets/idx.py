"""The IDX format of MNIST and Fashion-MNIST, gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian
uint32 dimension sizes, then the values in C order, big-endian. Image files hold
``(n, rows, cols)`` unsigned bytes.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from rdbench.data import DataError

#: IDX type codes and the numpy types they denote.
TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read(path: str | os.PathLike[str]) -> np.ndarray:
    """The array stored in the gzip-compressed IDX file at ``path`` (native byte order).

    Raises DataError naming the file when it is not valid gzip, is truncated, or its
    header disagrees with its contents.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path} is not a valid gzip file or is truncated ({type(exc).__name__}: {exc})") from None
    return parse(raw, str(path))


def parse(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """The array in decompressed IDX bytes; DataError if they are malformed."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{name}: not an IDX file (its first bytes are {raw[:4].hex() or 'missing'}, expected 0000tttt)"
        )
    code, ndim = raw[2], raw[3]
    if code not in TYPES:
        raise DataError(f"{name}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: the IDX header of {ndim} dimensions is cut short ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = TYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{name}: the IDX header promises {dims} values of {dtype.itemsize} byte(s) "
            f"({expected} bytes), the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="), copy=False)
