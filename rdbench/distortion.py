"""Distortion measures: one number per pair of realizations, in every form a method needs.

A realization has the source's shape (``()`` for scalar sources, ``(m,)`` for vectors,
``(C, H, W)`` for images). Measures sum over every axis of a realization, so a vector
source's squared error is ``||x - y||_2^2`` (the paper's convention), not a mean.

Each measure carries its numpy forms (``pairwise``, ``elementwise``, ``__call__``), its torch
forms for learned methods (``torch_elementwise``, ``torch_pairwise``: differentiable in the
reproduction, torch imported only when called) and, for d = sum_i |x_i - y_i|^p, its exponent
p, from which the high-rate constants follow: the Shannon-lower-bound slope k / D nats per
unit distortion with k = components / p, and the distortion (step/2)^p / (p + 1) per component
of a uniform scalar quantizer of step ``step``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from rdbench.units import LOG2E

if TYPE_CHECKING:
    import torch

#: A torch form of a measure (``torch_elementwise`` or ``torch_pairwise``), as methods pass it on.
TorchForm = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def flatten(a: np.ndarray) -> np.ndarray:
    """View realizations of shape (n, *shape) as (n, prod(shape))."""
    a = np.asarray(a)
    return a.reshape(a.shape[0], -1)


class Distortion(ABC):
    """d(x, y) >= 0 for one realization x and one reproduction y."""

    #: Short identifier stored in results (``squared_error``, ``hamming``, ...).
    name: str
    #: p of d = sum_i |x_i - y_i|^p, or None when the measure is not of that form.
    exponent: float | None = None
    #: Whether :meth:`torch_elementwise` and :meth:`torch_pairwise` exist (differentiable in y).
    differentiable: bool = False

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

    def torch_elementwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(x_i, y_i), differentiable: realizations (N, *shape) twice -> (N,)."""
        raise ValueError(self._not_differentiable())

    def torch_pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All pairs, differentiable in y: x (n, k), y (M, k) flattened -> (n, M)."""
        raise ValueError(self._not_differentiable())

    def require_differentiable(self, method: str) -> None:
        """Raise ValueError naming ``method`` unless the torch forms exist."""
        if not self.differentiable:
            raise ValueError(
                f"{method} needs a distortion differentiable in the reproduction (squared_error or "
                f"absolute_error), not {self.name!r}"
            )

    def high_rate_dimensions(self, components: int) -> float:
        """k of the high-rate (Shannon lower bound) slope k / D nats: components / p."""
        return components / self._exponent()

    def quantizer_distortion(self, step: float) -> float:
        """The high-rate distortion per component of a uniform scalar quantizer: (step/2)^p / (p+1)."""
        p = self._exponent()
        return (step / 2) ** p / (p + 1)

    def quantizer_step(self, slope_bits: float) -> float:
        """The uniform quantizer step whose high-rate slope per component, log2(e) / (p D), is
        ``slope_bits`` > 0 bits per unit distortion: step = 2 ((p + 1) D)^(1/p)."""
        p = self._exponent()
        return 2 * ((p + 1) * LOG2E / (p * slope_bits)) ** (1 / p)

    def _exponent(self) -> float:
        if self.exponent is None:
            raise ValueError(f"{self.name!r} is not a sum of |x - y|^p: it has no high-rate constants")
        return float(self.exponent)

    def _not_differentiable(self) -> str:
        return f"the {self.name} distortion has no differentiable torch form"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class SquaredError(Distortion):
    """||x - y||_2^2, summed over the realization."""

    name = "squared_error"
    exponent = 2.0
    differentiable = True

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        d = np.einsum("ik,ik->i", x, x)[:, None] + np.einsum("jk,jk->j", y, y)[None, :]
        d -= 2.0 * (x @ y.T)
        return np.maximum(d, 0.0, out=d)  # cancellation can leave tiny negatives

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        diff = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
        return np.einsum("ik,ik->i", diff, diff)

    def torch_elementwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_realization((x - y).square())

    def torch_pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """||x_i - y_j||^2 through one matrix product."""
        d = (y * y).sum(1)[None, :].addmm(x, y.T, alpha=-2.0)
        return d.add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0)  # rounding can leave tiny negatives


class AbsoluteError(Distortion):
    """||x - y||_1, summed over the realization."""

    name = "absolute_error"
    exponent = 1.0
    differentiable = True

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return np.abs(x[:, None, :] - y[None, :, :]).sum(axis=-1)

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)).sum(-1)

    def torch_elementwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _per_realization((x - y).abs())

    def torch_pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.cdist(x, y, p=1.0)


class Hamming(Distortion):
    """Number of components where x and y differ (0 or 1 for a scalar source)."""

    name = "hamming"

    def pairwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.asarray(x)[:, None, :] != np.asarray(y)[None, :, :]).sum(-1).astype(np.float64)

    def elementwise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (np.asarray(x) != np.asarray(y)).sum(-1).astype(np.float64)


def _per_realization(error: torch.Tensor) -> torch.Tensor:
    """Per-component errors (N, *shape) summed over each realization -> (N,)."""
    return error.flatten(1).sum(1) if error.dim() > 1 else error
