"""SVHN cropped digits (format 2): ``train_32x32.mat`` and ``test_32x32.mat``.

MATLAB v5 files holding ``X`` (32, 32, 3, n) uint8 (rows, columns, RGB, image) and the
labels ``y``. Read with :func:`scipy.io.loadmat`, which parses MATLAB data and never
unpickles; only ``X`` is read.
"""

from __future__ import annotations

import os

import numpy as np

from rdbench.data import DataError


def read_images(path: str | os.PathLike[str]) -> np.ndarray:
    """The images of an SVHN .mat file, (n, 3, 32, 32) uint8.

    Raises DataError naming the file when it cannot be parsed or holds no such images.
    """
    from scipy.io import loadmat

    try:
        content = loadmat(path, variable_names=["X"])
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on malformed input
        raise DataError(
            f"{path} is not a readable MATLAB v5 file or is truncated ({type(exc).__name__}: {exc})"
        ) from None
    x = content.get("X")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        found = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{path}: expected a variable X of shape (32, 32, 3, n) and type uint8, found {found}")
    return x.transpose(3, 2, 0, 1)
