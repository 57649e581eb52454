"""From a target to a slope lambda, and from a slope to a distortion.

lambda is the Lagrangian slope |dR/dD|. Targets and results give it in **bits per unit
distortion** (:attr:`Slope.bits`); the bounds compute in **nats** (:attr:`Slope.nats` =
bits * ln 2). Rules, in order:

* ``slope=s`` targets: lambda = s bits per unit distortion.
* distortion targets (R=, D=, D/Dmax=) on a source with an exact R(D): its slope |R'(D)| at
  the target (the source's ``slope`` method, else a central difference of R(D)). The tangent
  of R(D) there is the tightest line through the target, and a model trained at that slope
  lands near the target.
* otherwise the high-rate (Shannon lower bound) slope k / D nats per unit distortion, with
  k = (components)/2 for squared error and k = (components) for absolute error; the SLB's
  tangent point at slope lambda is D = k / lambda (:func:`high_rate_distortion`), exact for a
  Gaussian whose components all lie below the water level. Far too steep for data whose
  pixels have little variance each (8 x 8 digits: about 25x), so the bounds only start from
  it: the upper bound recalibrates lambda on validation data, the lower bound learns it.

Back from a slope to a distortion (:func:`tangent_distortion`, where the lower bound's line is
read for ``slope=`` targets): the exact tangent point |R'(D)| = lambda when the source has an
exact R(D) and D_max, otherwise the high-rate one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rdbench.interfaces import Source
from rdbench.targets import Target

LN2 = math.log(2.0)
TARGET, EXACT, HIGH_RATE = "target slope", "exact R(D) slope", "high-rate slope"
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
        return self.bits * LN2


def exact_slope_bits(source: Source, distortion: float) -> float | None:
    """|R'(D)| of the source's exact R(D) in bits per unit distortion, or None without one."""
    if not source.has_exact_rd:
        return None
    slope = getattr(source, "slope", None)
    if callable(slope):
        return abs(float(slope(distortion)))
    h = _RELATIVE_STEP * distortion
    return (source.rate_distortion(distortion - h) - source.rate_distortion(distortion + h)) / (2 * h)


def high_rate_dimensions(source: Source) -> float:
    """k of the high-rate slope k / D (nats): components/2 for squared error, else components."""
    components = math.prod(source.shape)
    return components / 2 if source.distortion.name == "squared_error" else float(components)


def target_slope(source: Source, target: Target) -> Slope:
    """The slope for a target resolved for ``source`` (rules in the module docstring)."""
    if target.kind == "slope":
        return Slope(float(target.value), TARGET)
    exact = exact_slope_bits(source, float(target.distortion))
    if exact is not None:
        return Slope(exact, EXACT)
    return Slope(high_rate_dimensions(source) / float(target.distortion) / LN2, HIGH_RATE)


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
