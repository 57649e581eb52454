"""``example-slb``: the Shannon lower bound of R(D) under squared error, from samples.

For X in R^m and D the squared error summed over the m components,

    R(D) >= R_SLB(D) = h(X) - (m/2) log2(2 pi e D / m)   bits per realization

(clipped at 0). h(X) is estimated with the Kozachenko-Leonenko k-nearest-neighbour estimator
h = psi(n) - psi(k) + log V_m + (m/n) sum_i log r_i (nats; r_i the distance from x_i to its
k-th neighbour, V_m the volume of the unit ball), on ``batches`` independent batches whose
spread gives +-2 standard errors. The bound holds for the exact h(X); with an estimated one
it is as good as the estimate (the estimator's bias shrinks with n).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from rdbench import Estimator, RDPoint, Source
from rdbench.distortion import SquaredError, flatten
from rdbench.slopes import Slope, tangent_distortion
from rdbench.targets import Target
from rdbench.units import to_bits


def kozachenko_leonenko_bits(x: np.ndarray, k: int) -> float:
    """h(X) in bits from samples x (n, m) by the k-nearest-neighbour estimator."""
    n, m = x.shape
    distances, _ = cKDTree(x).query(x, k=k + 1)  # the first neighbour is the point itself
    log_r = np.log(np.maximum(distances[:, k], 1e-300))
    log_unit_ball = (m / 2) * math.log(math.pi) - gammaln(m / 2 + 1)
    return to_bits(float(digamma(n) - digamma(k) + log_unit_ball + m * log_r.mean()))


class ShannonLowerBound(Estimator):
    """One ``lower`` point per target: R_SLB at the target's distortion (a ``slope=`` target:
    at the SLB's tangent point D = m log2(e) / (2 slope))."""

    def __init__(self, n_samples: int = 20_000, neighbours: int = 4, batches: int = 10) -> None:
        self.n_samples, self.neighbours, self.batches = n_samples, neighbours, batches

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        if not isinstance(source.distortion, SquaredError):
            raise ValueError(f"example-slb is for squared error, not {source.distortion.name!r}")
        x = flatten(source.sample(self.n_samples, seed, "train")).astype(np.float64)
        m = x.shape[1]
        per_batch = [kozachenko_leonenko_bits(b, self.neighbours) for b in np.array_split(x, self.batches)]
        h = kozachenko_leonenko_bits(x, self.neighbours)
        se = float(np.std(per_batch, ddof=1) / math.sqrt(self.batches))
        if target.kind == "slope":
            distortion, _ = tangent_distortion(source, Slope(float(target.value), "target slope"))
        else:
            distortion = float(target.distortion)
        line = h - (m / 2) * math.log2(2 * math.pi * math.e * distortion / m)
        return [
            RDPoint(
                rate_bits=max(line, 0.0),
                distortion=distortion,
                bound="lower",
                rate_lower_bits=max(line - 2 * se, 0.0),
                rate_upper_bits=max(line + 2 * se, 0.0),
                details={
                    "entropy_bits": h,
                    "entropy_se_bits": se,
                    "line_rate_bits": line,
                    "slope_bits": to_bits(m / (2 * distortion)),
                },
            )
        ]
