"""The channels RCC simulates: Q*_{Y|X=x}(dy) = exp(beta* d(x, y)) Q*_Y(dy) / E_{Q*_Y}[exp(beta* d(x, Y))].

A channel gives what the encoder and decoder need (paper Prop. 1): candidates Y ~ Q*_Y, the
slope beta* <= 0 in nats per unit distortion, and the rate parameter C of the index code
(bits per realization). Candidates live in *candidate coordinates* (shape (dim,)), where
``distortion`` between ``coordinates(x)`` and a candidate equals d(x, y) up to a term that
does not depend on y; that term changes neither the selected index nor the stopping rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from rdbench.distortion import Distortion, SquaredError
from rdbench.gaussian import WaterFilling
from rdbench.interfaces import GaussianLaw, Source
from rdbench.targets import Target
from rdbench.units import to_bits, to_nats


class Channel(ABC):
    """Q*_Y, beta* and C of an R(D)-achieving channel; see the module docstring.

    name: what the results call it. beta: beta* in nats per unit distortion (<= 0; 0 means
    Y independent of X). rate_bits: C. dim: candidate coordinates. distortion: the measure
    in candidate coordinates.
    """

    name: str
    beta: float
    rate_bits: float
    dim: int
    distortion: Distortion

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n candidates Y_i ~ Q*_Y in candidate coordinates: (n, dim) float32, C-contiguous."""

    @abstractmethod
    def coordinates(self, x: np.ndarray) -> np.ndarray:
        """One realization (source shape) in candidate coordinates: (dim,) float32."""

    @abstractmethod
    def reproduce(self, y: np.ndarray) -> np.ndarray:
        """A candidate (dim,) as a reproduction of the source's shape, float64."""

    def details(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "slope_bits": to_bits(-self.beta),
            "rate_parameter_bits": self.rate_bits,
            "dimension": self.dim,
        }


class ExactGaussianChannel(Channel):
    """The R(D)-achieving backward channel of a Gaussian source (Cover & Thomas Thm. 10.3.3).

    In the source's eigenbasis (x' = V^T x) with water level lambda, each active component
    (sigma_k^2 > lambda) has Q*_{Y'_k} = N(0, sigma_k^2 - lambda) and
    Q*_{Y'_k|X'_k=x} = N((1 - lambda/sigma_k^2) x, lambda (1 - lambda/sigma_k^2)), which is
    exp(beta* (x - y)^2) Q*_{Y'_k} normalized, with beta* = -1/(2 lambda); inactive components
    reproduce 0. Its mutual information is R(D). (The paper's Sec. V-C writes the forward
    channel N(x, lambda) with Q_Y = N(0, sigma_k^2 + lambda): distortion lambda per component
    but rate 1/2 log2(1 + sigma_k^2/lambda) > R(D).)

    Candidate coordinates are the active eigen-coordinates; the inactive ones add
    sum_k x'_k^2 to every candidate's distortion alike.
    """

    name = "exact-gaussian"
    distortion = SquaredError()

    def __init__(self, source: Source, target: Target) -> None:
        if not isinstance(source, GaussianLaw):
            raise ValueError(
                f"the exact channel needs a source with the gaussian feature (rdbench.interfaces.GaussianLaw: "
                f"variances and rotation), not {type(source).__name__}; use the NERD channel (pfr-nerd, orc-nerd)"
            )
        filling = WaterFilling(source.variances)
        if target.distortion is None:
            distortion = filling.distortion_at_slope(target.value)
        else:
            distortion = float(target.distortion)
        q = filling.reproduction_variances(distortion)
        active = q > 0
        self.target_distortion = min(distortion, filling.d_max)
        self.water_level = filling.water_level(distortion)
        self.beta = -to_nats(filling.slope_bits(distortion))  # dR/dD in nats: -1 / (2 lambda)
        self.rate_bits = filling.rate_bits(distortion)
        self.dim = int(active.sum())
        self._scale = np.sqrt(q[active]).astype(np.float32)
        self._basis = source.rotation[:, active]  # (m, dim): the active eigenvectors

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        y = rng.standard_normal((n, self.dim), dtype=np.float32)
        y *= self._scale
        return y

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) @ self._basis).astype(np.float32)

    def reproduce(self, y: np.ndarray) -> np.ndarray:
        return self._basis @ np.asarray(y, dtype=np.float64)

    def details(self) -> dict[str, Any]:
        return {**super().details(), "water_level": self.water_level, "target_distortion": self.target_distortion}
