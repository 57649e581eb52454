"""Gaussian vector sources N(0, V diag(sigma^2) V^T) with squared-error distortion.

Shapes: one realization is (m,); ``sample`` returns (n, m) float64. Rates are in bits per
realization, distortions are ||x - y||_2^2 per realization (summed over the m components).
R(D) is exact by reverse water-filling (paper eq. 22-23; Cover & Thomas Thm. 10.3.3).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

from rdbench import Source, SquaredError
from rdbench.interfaces import Split

_LOG2_E = math.log2(math.e)


class GaussianSource(Source):
    """X = V diag(sigma) Z with Z ~ N(0, I_m): eigen-spectrum ``variances``, eigenbasis V.

    variances: sigma_k^2 > 0, k = 1..m, in the order of V's columns.
    rotate: False gives V = I (independent components); True gives a Haar-random orthogonal
        V drawn from ``rotation_seed`` (QR of a Gaussian matrix with the sign fix).
    """

    distortion = SquaredError()

    def __init__(self, variances: Sequence[float] = (1.0, 1.0), rotate: bool = False, rotation_seed: int = 0) -> None:
        sigma2 = np.array(variances, dtype=np.float64)
        if sigma2.ndim != 1 or sigma2.size == 0:
            raise ValueError(f"variances must be a non-empty list of numbers, got {variances!r}")
        if not np.all(np.isfinite(sigma2)) or np.any(sigma2 <= 0):
            raise ValueError(f"variances must be finite and > 0, got {sigma2.tolist()}")
        if not isinstance(rotate, (bool, np.bool_)):
            raise ValueError(f"rotate must be true or false, got {rotate!r}")
        self.rotate = bool(rotate)
        self.rotation_seed = operator.index(rotation_seed)
        self.shape = (sigma2.size,)
        self._sigma2 = sigma2
        self._rotation = _random_rotation(sigma2.size, self.rotation_seed) if self.rotate else np.eye(sigma2.size)

        # Water-filling tables over the spectrum sorted in decreasing order s_1 >= ... >= s_m.
        m = sigma2.size
        desc = np.sort(sigma2)[::-1]
        smallest_first = np.concatenate(([0.0], np.cumsum(desc[::-1])))
        self._desc = desc
        self._tail = smallest_first[::-1]  # _tail[k] = sum_{j > k} s_j, k = 0..m
        k = np.arange(1, m + 1)
        # D and R at water level lambda = s_k, the point where component k becomes active.
        self._d_break = k * desc + self._tail[1:]
        self._log_cum = np.concatenate(([0.0], np.cumsum(np.log2(desc))))  # sum_{j <= k} log2 s_j
        self._r_break = 0.5 * (self._log_cum[:-1] - (k - 1) * np.log2(desc))

    def __repr__(self) -> str:
        return f"GaussianSource(m={self.shape[0]}, rotate={self.rotate}, rotation_seed={self.rotation_seed})"

    @property
    def variances(self) -> np.ndarray:
        """The eigen-spectrum sigma_k^2, shape (m,), in the order of :attr:`rotation`'s columns."""
        return self._sigma2.copy()

    @property
    def rotation(self) -> np.ndarray:
        """The orthogonal eigenbasis V, shape (m, m); the identity when not rotated."""
        return self._rotation.copy()

    @property
    def covariance(self) -> np.ndarray:
        """Sigma = V diag(sigma^2) V^T, shape (m, m)."""
        return (self._rotation * self._sigma2) @ self._rotation.T

    @property
    def d_max(self) -> float:
        """sum_k sigma_k^2 = E||X||^2, the distortion of reproducing every x by 0."""
        return float(self._tail[0])

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        rng = self.rng(seed, split)
        x = rng.standard_normal((operator.index(n), self.shape[0])) * np.sqrt(self._sigma2)
        return x @ self._rotation.T if self.rotate else x

    def water_level(self, distortion: float) -> float:
        """The reverse water-filling level lambda(D) of eq. (23), in distortion units.

        Closed form: with k = |{sigma^2 > lambda}| active components,
        lambda = (D - sum of the inactive sigma^2) / k. Equals max sigma^2 at D = D_max and
        is +inf for D > D_max (every component is reproduced by 0).
        """
        d = self._check_distortion(distortion)
        if d > self.d_max:
            return math.inf
        k = int(np.count_nonzero(self._d_break > d))
        if k == 0:
            return float(self._desc[0])
        return float((d - self._tail[k]) / k)

    def rate_distortion(self, distortion: float) -> float:
        """R(D) = sum over sigma_k^2 > lambda of 1/2 log2(sigma_k^2 / lambda), bits per realization.

        D must be > 0 (R(D) -> inf as D -> 0); R(D) = 0 for D >= D_max.
        """
        lam = self.water_level(distortion)
        active = self._desc[self._desc > lam]
        return max(0.0, float(0.5 * np.sum(np.log2(active / lam))))

    def slope(self, distortion: float) -> float:
        """dR/dD = -log2(e) / (2 lambda) in bits per unit distortion (<= 0; 0 beyond D_max)."""
        lam = self.water_level(distortion)
        return 0.0 if math.isinf(lam) else -_LOG2_E / (2.0 * lam)

    def distortion_at_rate(self, rate_bits: float) -> float:
        """D(R), the exact inverse of :meth:`rate_distortion`, in closed form.

        With k active components, R = 1/2 (sum_{j <= k} log2 s_j - k log2 lambda), so
        lambda = 2^((sum_{j <= k} log2 s_j - 2R) / k) and D = k lambda + sum_{j > k} s_j.
        """
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
        """Variances max(sigma_k^2 - lambda, 0) of the R(D)-achieving Q_Y*, shape (m,).

        In the eigenbasis (Y' = V^T Y, X' = V^T X) the optimal test channel is, per active
        component, Y'_k ~ N(0, sigma_k^2 - lambda) and X'_k = Y'_k + N(0, lambda)
        independent; equivalently Y'_k | X'_k = x ~ N((1 - lambda/sigma_k^2) x,
        lambda (1 - lambda/sigma_k^2)). Inactive components have Y'_k = 0.
        """
        lam = self.water_level(distortion)
        return np.maximum(self._sigma2 - lam, 0.0)

    @staticmethod
    def _check_distortion(distortion: float) -> float:
        d = float(distortion)
        if not d > 0:
            raise ValueError(f"distortion must be > 0 (R(D) is infinite at D = 0), got {distortion!r}")
        return d


def _random_rotation(m: int, seed: int) -> np.ndarray:
    """A Haar-distributed orthogonal (m, m) matrix: QR of a Gaussian matrix, signs fixed by diag(R)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, m)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def paper_m20(rotation_seed: int = 0) -> GaussianSource:
    """The paper's Fig. 2 source: m = 20, sigma_k^2 = 4 exp(-k/16), k = 1..20, rotated."""
    return GaussianSource([4.0 * math.exp(-k / 16) for k in range(1, 21)], rotate=True, rotation_seed=rotation_seed)


def paper_m40() -> GaussianSource:
    """The paper's Fig. 15 source: m = 40, sigma_k^2 = 4 exp(-k/4), k = 1..40, diagonal."""
    return GaussianSource([4.0 * math.exp(-k / 4) for k in range(1, 41)])


def paper_rcc() -> GaussianSource:
    """The paper's Sec. V-C (RCC) source: m = 20, sigma_k^2 = 4 exp(-k^2/16), k = 1..20, diagonal."""
    return GaussianSource([4.0 * math.exp(-(k**2) / 16) for k in range(1, 21)])


def published_m20(rotation_seed: int = 0) -> GaussianSource:
    """The paper's published code: m = 20, sigma_k = 2 exp(-k/4), k = 0..19, rotated.

    So sigma_k^2 = 4 exp(-k/2).
    """
    return GaussianSource([(2.0 * math.exp(-k / 4)) ** 2 for k in range(20)], rotate=True, rotation_seed=rotation_seed)
