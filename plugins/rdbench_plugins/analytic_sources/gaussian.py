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
from rdbench.gaussian import WaterFilling
from rdbench.interfaces import Split


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

        self._filling = WaterFilling(sigma2)

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
        return self._filling.d_max

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        rng = self.rng(seed, split)
        x = rng.standard_normal((operator.index(n), self.shape[0])) * np.sqrt(self._sigma2)
        return x @ self._rotation.T if self.rotate else x

    def water_level(self, distortion: float) -> float:
        """The reverse water-filling level lambda(D) of eq. (23), in distortion units."""
        return self._filling.water_level(distortion)

    def rate_distortion(self, distortion: float) -> float:
        """R(D) in bits per realization by reverse water-filling (:mod:`rdbench.gaussian`)."""
        return self._filling.rate_bits(distortion)

    def slope(self, distortion: float) -> float:
        """dR/dD = -log2(e) / (2 lambda) in bits per unit distortion (<= 0; 0 beyond D_max)."""
        return -self._filling.slope_bits(distortion)

    def distortion_at_rate(self, rate_bits: float) -> float:
        """D(R), the exact inverse of :meth:`rate_distortion`, in closed form."""
        return self._filling.distortion_at_rate(rate_bits)

    def reproduction_variances(self, distortion: float) -> np.ndarray:
        """Variances max(sigma_k^2 - lambda, 0) of the R(D)-achieving Q_Y*, shape (m,), in the
        eigenbasis (Y' = V^T Y), in the order of :attr:`variances`."""
        return self._filling.reproduction_variances(distortion)


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
