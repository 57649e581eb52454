"""Reverse water-filling: the R(D) of a Gaussian law under squared error, in one place.

For X with covariance eigenvalues sigma_k^2 and D summed over the components (Cover & Thomas
Thm. 10.3.3), the water level lambda(D) solves sum_k min(lambda, sigma_k^2) = D and

    R(D) = sum over sigma_k^2 > lambda of 1/2 log2(sigma_k^2 / lambda)   bits per realization,
    dR/dD = -log2(e) / (2 lambda)                                         bits per unit distortion.

The Gaussian sources, the slope rules (:mod:`rdbench.slopes`) and the exact RCC channel all
read these tables; a source offering the ``gaussian`` feature exposes its law through
:class:`rdbench.interfaces.GaussianLaw`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rdbench.units import LOG2E


class WaterFilling:
    """Reverse water-filling over a spectrum of variances sigma_k^2 >= 0, shape (m,)."""

    def __init__(self, variances: Sequence[float] | np.ndarray) -> None:
        sigma2 = np.asarray(variances, dtype=np.float64).ravel()
        if sigma2.size == 0 or not np.all(np.isfinite(sigma2)) or np.any(sigma2 < 0):
            raise ValueError(f"variances must be a non-empty list of finite numbers >= 0, got {sigma2.tolist()}")
        self.variances = sigma2
        m = sigma2.size
        desc = np.sort(sigma2)[::-1]
        self._desc = desc
        self._tail = np.concatenate(([0.0], np.cumsum(desc[::-1])))[::-1]  # _tail[k] = sum_{j > k} s_j
        k = np.arange(1, m + 1)
        # D and R at water level lambda = s_k, the point where component k becomes active.
        self._d_break = k * desc + self._tail[1:]
        with np.errstate(divide="ignore"):
            logs = np.log2(desc)
        self._log_cum = np.concatenate(([0.0], np.cumsum(logs)))  # sum_{j <= k} log2 s_j
        with np.errstate(invalid="ignore"):
            self._r_break = 0.5 * (self._log_cum[:-1] - (k - 1) * logs)

    @property
    def d_max(self) -> float:
        """sum_k sigma_k^2: the distortion of reproducing every realization by the mean."""
        return float(self._tail[0])

    def water_level(self, distortion: float) -> float:
        """lambda(D): with k active components, (D - sum of the inactive sigma^2) / k; the
        largest variance at D = D_max, +inf above it. D must be > 0."""
        d = _positive(distortion)
        if d > self.d_max:
            return math.inf
        k = int(np.count_nonzero(self._d_break > d))
        return float(self._desc[0]) if k == 0 else float((d - self._tail[k]) / k)

    def rate_bits(self, distortion: float) -> float:
        """R(D) in bits per realization (0 at and above D_max)."""
        lam = self.water_level(distortion)
        active = self._desc[self._desc > lam]
        return max(0.0, float(0.5 * np.sum(np.log2(active / lam))))

    def slope_bits(self, distortion: float) -> float:
        """|dR/dD| = log2(e) / (2 lambda) in bits per unit distortion (0 above D_max)."""
        lam = self.water_level(distortion)
        return 0.0 if math.isinf(lam) else LOG2E / (2.0 * lam)

    def distortion_at_slope(self, slope_bits: float) -> float:
        """The D where |dR/dD| = slope_bits > 0: sum_k min(sigma_k^2, log2(e) / (2 slope))."""
        return float(np.minimum(self.variances, LOG2E / (2.0 * float(slope_bits))).sum())

    def distortion_at_rate(self, rate_bits: float) -> float:
        """D(R), the exact inverse of :meth:`rate_bits`: with k active components
        lambda = 2^((sum_{j <= k} log2 s_j - 2R) / k) and D = k lambda + sum_{j > k} s_j."""
        r = float(rate_bits)
        if math.isnan(r):
            raise ValueError("rate must be a number, got nan")
        if r <= 0:
            return self.d_max
        if math.isinf(r):
            return 0.0
        k = int(np.count_nonzero(self._r_break < r))
        lam = 2.0 ** ((self._log_cum[k] - 2.0 * r) / k)
        return float(k * lam + self._tail[k])

    def reproduction_variances(self, distortion: float) -> np.ndarray:
        """max(sigma_k^2 - lambda, 0), shape (m,) in the order given: the variances of the
        R(D)-achieving reproduction (Y'_k ~ N(0, sigma_k^2 - lambda), X'_k = Y'_k + N(0, lambda))."""
        return np.maximum(self.variances - self.water_level(distortion), 0.0)


def _positive(distortion: float) -> float:
    d = float(distortion)
    if not d > 0:
        raise ValueError(f"distortion must be > 0 (R(D) is infinite at D = 0), got {distortion!r}")
    return d
