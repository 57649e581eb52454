"""Finite sources with Hamming distortion: M-ary and Bernoulli.

One realization is a scalar symbol in {0, ..., M-1} (shape ``()``); ``sample`` returns (n,)
int64. Rates are in bits per realization; the distortion is 1 when the reproduction differs
from the symbol and 0 otherwise, so an expected distortion is an error probability.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

from rdbench import Hamming, Source
from rdbench.interfaces import DiscreteModel, Split
from rdbench_plugins.analytic_sources.entropy import entropy_bits, h2


class MarySource(Source):
    """An i.i.d. source on {0, ..., M-1} with probabilities ``pmf`` (all > 0, M >= 2).

    R(D) is exact only where theory gives it in closed form (Erokhin 1958; Pinkston 1967):

    * R(D) = H(P) - h(D) - D log2(M - 1) for 0 <= D <= (M - 1) p_min;
    * R(D) = 0 for D >= D_max = 1 - p_max;
    * in between, (M - 1) p_min < D < D_max, R(D) has no closed form and
      :meth:`rate_distortion` returns None (a uniform pmf, or M = 2, has no such gap).
    """

    shape = ()
    distortion = Hamming()

    def __init__(self, pmf: Sequence[float] = (0.5, 0.3, 0.2)) -> None:
        p = np.array(pmf, dtype=np.float64)
        if p.ndim != 1 or p.size < 2:
            raise ValueError(f"pmf must list at least 2 probabilities, got {pmf!r}")
        if not np.all(np.isfinite(p)) or np.any(p <= 0):
            raise ValueError(f"pmf entries must be > 0 (drop zero-probability symbols), got {p.tolist()}")
        if not math.isclose(p.sum(), 1.0, abs_tol=1e-9):
            raise ValueError(f"pmf must sum to 1, got sum {p.sum()!r} for {p.tolist()}")
        self._pmf = p / p.sum()
        self._entropy = entropy_bits(self._pmf)
        m = p.size
        d_max = 1.0 - float(self._pmf.max())
        d_closed = (m - 1) * float(self._pmf.min())
        # (M-1) p_min <= D_max always; equal (up to rounding) for a uniform pmf or M = 2.
        self._d_closed = d_max if math.isclose(d_closed, d_max, rel_tol=1e-12) else min(d_closed, d_max)
        self._d_max = d_max

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pmf={self._pmf.tolist()})"

    @property
    def pmf(self) -> np.ndarray:
        """Symbol probabilities, shape (M,)."""
        return self._pmf.copy()

    @property
    def entropy(self) -> float:
        """H(P) in bits per realization: R(0)."""
        return self._entropy

    @property
    def d_max(self) -> float:
        """1 - max(pmf): the error probability of always guessing the likeliest symbol."""
        return self._d_max

    @property
    def closed_form_limit(self) -> float:
        """(M - 1) p_min: the largest D where the closed-form R(D) holds (D_max if no gap)."""
        return self._d_closed

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        rng = self.rng(seed, split)
        return rng.choice(self._pmf.size, size=operator.index(n), p=self._pmf).astype(np.int64)

    def discrete(self) -> DiscreteModel:
        symbols = np.arange(self._pmf.size)
        return DiscreteModel(pmf=self.pmf, alphabet=symbols, reproductions=symbols.copy())

    def _closed_form(self, d: float) -> float:
        return self._entropy - h2(d) - d * math.log2(self._pmf.size - 1)

    def rate_distortion(self, distortion: float) -> float | None:
        """R(D) in bits per realization for D >= 0; None where no closed form exists."""
        d = float(distortion)
        if not d >= 0:
            raise ValueError(f"Hamming distortion must be >= 0, got {distortion!r}")
        if d >= self._d_max:
            return 0.0
        if d <= self._d_closed:
            return max(0.0, self._closed_form(d))
        return None

    def distortion_at_rate(self, rate_bits: float) -> float | None:
        """D(R) for rates the closed form covers; None for rates above H(P) or in the gap."""
        r = float(rate_bits)
        if math.isnan(r):
            raise ValueError("rate must be a number, got nan")
        if r <= 0:
            return self._d_max
        if r > self._entropy:
            return None
        edge = self._closed_form(self._d_closed)
        if r < edge and self._d_closed < self._d_max:
            return None  # the distortion lies in (closed_form_limit, D_max): no closed form
        if r <= edge:
            return self._d_closed
        from scipy.optimize import brentq

        # h(D) + D log2(M-1) increases on [0, (M-1)/M], which contains [0, closed_form_limit].
        return float(brentq(lambda d: self._closed_form(d) - r, 0.0, self._d_closed, xtol=1e-15, rtol=1e-14))


class BernoulliSource(MarySource):
    """Bernoulli(p) on {0, 1}: R(D) = h(p) - h(D) for 0 <= D <= min(p, 1 - p), 0 beyond."""

    def __init__(self, p: float = 0.2) -> None:
        p = float(p)
        if not 0.0 < p < 1.0:
            raise ValueError(f"Bernoulli p must lie in (0, 1), got {p!r}")
        super().__init__([1.0 - p, p])
        self.p = p

    def __repr__(self) -> str:
        return f"BernoulliSource(p={self.p!r})"
