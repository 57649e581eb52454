"""Laplace(0, b) scalar source with absolute-error distortion.

One realization is a float (shape ``()``); ``sample`` returns (n,) float64. Rates are in bits
per realization, distortion is |x - y| per realization.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from rdbench import AbsoluteError, Source
from rdbench.interfaces import Split


class LaplaceSource(Source):
    """X ~ Laplace(0, b), density exp(-|x|/b) / (2b): R(D) = log2(b / D) for 0 < D <= b, else 0.

    D_max = E|X| = b (reproduce every x by the median 0).
    """

    shape = ()
    distortion = AbsoluteError()

    def __init__(self, scale: float = 1.0) -> None:
        b = float(scale)
        if not (math.isfinite(b) and b > 0):
            raise ValueError(f"Laplace scale must be finite and > 0, got {scale!r}")
        self.scale = b

    def __repr__(self) -> str:
        return f"LaplaceSource(scale={self.scale!r})"

    @property
    def d_max(self) -> float:
        return self.scale

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        return self.rng(seed, split).laplace(0.0, self.scale, size=operator.index(n))

    def rate_distortion(self, distortion: float) -> float:
        """log2(b / D) bits per realization for 0 < D <= b; 0 for D >= b. D must be > 0."""
        d = float(distortion)
        if not d > 0:
            raise ValueError(f"distortion must be > 0 (R(D) is infinite at D = 0), got {distortion!r}")
        return max(0.0, math.log2(self.scale / d))

    def distortion_at_rate(self, rate_bits: float) -> float:
        """D(R) = b 2^-R for R >= 0; D_max for R <= 0."""
        r = float(rate_bits)
        if math.isnan(r):
            raise ValueError("rate must be a number, got nan")
        return self.scale * 2.0 ** -max(r, 0.0)
