"""Entropies in bits."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def h2(p: float) -> float:
    """Binary entropy h(p) = -p log2 p - (1 - p) log2(1 - p) in bits, for p in [0, 1]."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"h2 needs a probability in [0, 1], got {p!r}")
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def entropy_bits(pmf: ArrayLike) -> float:
    """Shannon entropy H(P) = -sum p log2 p in bits of a pmf (zero entries contribute 0)."""
    p = np.asarray(pmf, dtype=np.float64).ravel()
    if p.size == 0 or np.any(p < 0) or not math.isclose(p.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"entropy_bits needs a non-empty pmf of non-negative entries summing to 1, got {p!r}")
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
