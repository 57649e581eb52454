"""From a target to a Lagrangian slope lambda, and from a slope to a distortion.

Methods that train on R + lambda D (NTC, the sandwich bounds, third-party ones) need a
lambda for a distortion target; this module is the one place that picks it. lambda is the
slope |dR/dD|. Targets and results give it in **bits per unit distortion**
(:attr:`Slope.bits`); :attr:`Slope.nats` = bits * ln 2. Rules, in order:

* ``slope=s`` targets: lambda = s bits per unit distortion.
* distortion targets (R=, D=, D/Dmax=) on a source with an exact R(D): its slope |R'(D)| at
  the target (the source's ``slope`` method, else a central difference of R(D)). The tangent
  of R(D) there is the tightest line through the target, and a model trained at that slope
  lands near the target.
* squared error with training samples given: the slope log2(e) / (2 theta) of the R(D) of
  the Gaussian with the samples' covariance, theta the reverse water-filling level at the
  target (:func:`gaussian_slope_bits`). It knows that near-constant components (an image's
  empty border) cost nothing; for a Gaussian source it is the exact slope.
* otherwise the high-rate (Shannon lower bound) slope k / D nats per unit distortion, with
  k = (components)/2 for squared error and k = (components) for absolute error; the SLB's
  tangent point at slope lambda is D = k / lambda (:func:`high_rate_distortion`), exact for a
  Gaussian whose components all lie below the water level. Far too steep for data whose
  pixels have little variance each (8 x 8 digits: about 25x).

Neither of the last two is the data's slope, so methods only start from them (NTC and the
upper bound recalibrate lambda on validation data, the lower bound learns it).

Back from a slope to a distortion (:func:`tangent_distortion`, where the lower bound's line is
read for ``slope=`` targets): the exact tangent point |R'(D)| = lambda when the source has an
exact R(D) and D_max, otherwise the high-rate one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rdbench.distortion import SquaredError
from rdbench.gaussian import WaterFilling
from rdbench.interfaces import Source
from rdbench.targets import Target
from rdbench.units import to_bits, to_nats

TARGET, EXACT, GAUSSIAN, HIGH_RATE = (
    "target slope",
    "exact R(D) slope",
    "Gaussian R(D) slope of the samples",
    "high-rate slope",
)
EXACT_TANGENT, HIGH_RATE_TANGENT = "exact tangent", "high-rate tangent"
#: Relative step of the central difference of R(D).
_RELATIVE_STEP = 1e-6
#: The exact tangent point is searched on [D_max * _LOWEST, D_max], by bisection of log D.
_LOWEST, _BISECTIONS = 1e-9, 60


@dataclass(frozen=True)
class Slope:
    """lambda = |dR/dD| >= 0 in bits per unit distortion, and the rule that chose it."""

    bits: float
    rule: str

    @property
    def nats(self) -> float:
        """lambda in nats per unit distortion."""
        return to_nats(self.bits)


def steepest_first(slopes: Sequence[Slope]) -> list[int]:
    """Indices of ``slopes`` from the steepest (highest rate) down: the order in which a
    method warm-starts each target of a curve from the previous one."""
    return sorted(range(len(slopes)), key=lambda i: slopes[i].bits, reverse=True)


def exact_slope_bits(source: Source, distortion: float) -> float | None:
    """|R'(D)| of the source's exact R(D) in bits per unit distortion, or None without one
    (a wrapper source may declare R(D) and still return None for its base's)."""
    if not source.has_exact_rd:
        return None
    slope = getattr(source, "slope", None)
    if callable(slope):
        value = slope(distortion)
        return None if value is None else abs(float(value))
    h = _RELATIVE_STEP * distortion
    below, above = source.rate_distortion(distortion - h), source.rate_distortion(distortion + h)
    return None if below is None or above is None else (below - above) / (2 * h)


def high_rate_dimensions(source: Source) -> float:
    """k of the high-rate slope k / D (nats): components / p for d = sum |x - y|^p."""
    return source.distortion.high_rate_dimensions(math.prod(source.shape))


def gaussian_slope_bits(samples: np.ndarray, distortion: float) -> float | None:
    """|R'(D)| = log2(e) / (2 theta) bits of the Gaussian with the covariance of ``samples``
    (N, ...) under squared error (reverse water-filling over its eigenvalues,
    :class:`rdbench.gaussian.WaterFilling`); None when D is at least their sum (slope 0)."""
    x = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    variances = np.clip(np.linalg.eigvalsh(np.atleast_2d(np.cov(x, rowvar=False))), 0.0, None)
    filling = WaterFilling(variances)
    return filling.slope_bits(distortion) if distortion < filling.d_max else None


def target_slope(source: Source, target: Target, samples: np.ndarray | None = None) -> Slope:
    """The slope for a target resolved for ``source`` (rules in the module docstring);
    samples: training realizations (N, *shape) for the Gaussian rule."""
    if target.kind == "slope":
        return Slope(float(target.value), TARGET)
    distortion = float(target.distortion)
    exact = exact_slope_bits(source, distortion)
    if exact is not None:
        return Slope(exact, EXACT)
    if samples is not None and isinstance(source.distortion, SquaredError):
        gaussian = gaussian_slope_bits(samples, distortion)
        if gaussian is not None:
            return Slope(gaussian, GAUSSIAN)
    return Slope(to_bits(high_rate_dimensions(source) / distortion), HIGH_RATE)


def high_rate_distortion(source: Source, slope: Slope) -> float:
    """The tangent point k / lambda_nats of the high-rate R(D) at a slope > 0, at most D_max."""
    distortion = high_rate_dimensions(source) / slope.nats
    return min(distortion, float(source.d_max)) if source.d_max is not None else distortion


def tangent_distortion(source: Source, slope: Slope) -> tuple[float, str]:
    """(D where a line of slope lambda > 0 touches R(D), the rule used): the exact tangent point
    (|R'(D)| = lambda, R(D) being convex) when the source has an exact R(D) and D_max,
    otherwise :func:`high_rate_distortion`."""
    if not (source.has_exact_rd and source.d_max is not None):
        return high_rate_distortion(source, slope), HIGH_RATE_TANGENT
    lo, hi = float(source.d_max) * _LOWEST, float(source.d_max)
    for _ in range(_BISECTIONS):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if exact_slope_bits(source, mid) > slope.bits else (lo, mid)
    return hi, EXACT_TANGENT
