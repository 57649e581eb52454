"""Distortion measures: one number per pair of realizations.

A realization has the source's shape (``()`` for scalar sources, ``(m,)`` for vectors,
``(C, H, W)`` for images). Measures sum over every axis of a realization, so a vector
source's squared error is ``||x - y||_2^2`` (the paper's convention), not a mean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


def flatten(a: np.ndarray) -> np.ndarray:
    """View realizations of shape (n, *shape) as (n, prod(shape))."""
    a = np.asarray(a)
    return a.reshape(a.shape[0], -1)


class Distortion(ABC):
    """d(x, y) >= 0 for one realization x and one reproduction y."""

    #: Short identifier stored in results (``squared_error``, ``hamming``, ...).
    name: str

    @abstractmethod
    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """All pairs: x (n, k) and y (j, k) flattened realizations -> (n, j) float64."""

    @abstractmethod
    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Matched pairs: x, y (n, k) flattened realizations -> (n,) float64."""

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """d(x_i, y_i) for realizations x, y of shape (n, *shape) -> (n,) float64."""
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            raise ValueError(f"distortion needs matching shapes, got {x.shape} and {y.shape}")
        return self.elementwise(flatten(x), flatten(y))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class SquaredError(Distortion):
    """||x - y||_2^2, summed over the realization."""

    name = "squared_error"

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        d = np.einsum("ik,ik->i", x, x)[:, None] + np.einsum("jk,jk->j", y, y)[None, :]
        d -= 2.0 * (x @ y.T)
        return np.maximum(d, 0.0, out=d)  # cancellation can leave tiny negatives

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
        return np.einsum("ik,ik->i", diff, diff)


class AbsoluteError(Distortion):
    """||x - y||_1, summed over the realization."""

    name = "absolute_error"

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return np.abs(x[:, None, :] - y[None, :, :]).sum(axis=-1)

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)).sum(-1)


class Hamming(Distortion):
    """Number of components where x and y differ (0 or 1 for a scalar source)."""

    name = "hamming"

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.asarray(x)[:, None, :] != np.asarray(y)[None, :, :]).sum(-1).astype(np.float64)

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.asarray(x) != np.asarray(y)).sum(-1).astype(np.float64)


MEASURES: dict[str, type[Distortion]] = {cls.name: cls for cls in (SquaredError, AbsoluteError, Hamming)}
