"""Reference: entropy-coded scalar quantization (ECSQ) of a Gaussian, computed numerically.

The quantizer has uniform thresholds (k + theta) * step, k in Z, and reconstructs each cell
by its centroid; its rate is the entropy of the cell index, in bits per component. At high
rate its gap to R(D) tends to 1/2 log2(pi e / 6) = 0.254 bits. Used by the benchmark and
the tests as the bar NTC with scalar rounding should reach on an i.i.d. Gaussian.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import norm


def uniform_threshold_quantizer(step: float, theta: float) -> tuple[float, float]:
    """(entropy in bits, MSE) of the centroid quantizer with thresholds (k + theta) * step on N(0, 1)."""
    k = np.arange(math.floor(-12 / step - theta) - 1, math.ceil(12 / step - theta) + 2)
    edges = (k + theta) * step
    p = np.diff(norm.cdf(edges))
    mass = np.diff(-norm.pdf(edges))  # integral of x over each cell
    keep = p > 1e-300
    p, mass = p[keep], mass[keep]
    return float(-(p * np.log2(p)).sum()), float(1.0 - (mass**2 / p).sum())


def ecsq_rate(distortion: float, variance: float = 1.0) -> float:
    """Smallest entropy (bits per component) of a uniform-threshold centroid quantizer of
    N(0, variance) with mean squared error ``distortion`` (0 < distortion < variance)."""
    d = distortion / variance
    if not 0 < d < 1:
        raise ValueError(f"distortion must lie in (0, variance), got {distortion}")

    def rate_at(theta: float) -> float:
        mse = lambda step: uniform_threshold_quantizer(step, theta)[1] - d  # noqa: E731
        if mse(50.0) < 0:
            return math.inf  # this offset never reaches so large a distortion
        return uniform_threshold_quantizer(brentq(mse, 1e-4, 50.0, xtol=1e-12), theta)[0]

    grid = np.linspace(0.0, 0.5, 6)
    best = min(grid, key=rate_at)
    lo, hi = max(0.0, best - 0.1), min(0.5, best + 0.1)
    refined = minimize_scalar(rate_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
    return float(min(rate_at(best), refined.fun))


def ecsq_hull(steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Lower convex hull of (MSE, entropy) points of uniform-threshold quantizers of N(0, 1).

    Returns (d, h): MSE increasing to 1 (rate 0), entropy in bits decreasing to 0.
    """
    points = [(1.0, 0.0)]
    for theta in np.linspace(0.0, 0.5, 6):
        for step in np.geomspace(0.02, 12.0, steps):
            h, d = uniform_threshold_quantizer(float(step), float(theta))
            points.append((d, h))
    points.sort()
    hull: list[tuple[float, float]] = []
    for p in points:  # monotone chain, lower hull
        while (
            len(hull) >= 2
            and (hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1]) - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])
            <= 0
        ):
            hull.pop()
        hull.append(p)
    d, h = np.array(hull).T
    return d, h


def ecsq_allocation_rate(
    variances: np.ndarray, distortion: float, hull: tuple[np.ndarray, np.ndarray] | None = None
) -> float:
    """Bits per realization of ECSQ on independent N(0, variances[k]) components (say, a
    Gaussian in its eigenbasis) with the rates allocated optimally for a total MSE
    ``distortion``: the lower convex hull of the sum, found by equal slopes."""
    d, h = hull if hull is not None else ecsq_hull()
    var = np.asarray(variances, dtype=np.float64)
    if not 0 < distortion < var.sum():
        raise ValueError(f"distortion must lie in (0, {var.sum()}), got {distortion}")

    def at(mu: float) -> tuple[float, float]:
        j = np.argmin(h[None, :] + mu * var[:, None] * d[None, :], axis=1)
        return float((var * d[j]).sum()), float(h[j].sum())

    lo, hi = 1e-6, 1e9  # slopes: D(lo) is large, D(hi) small
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if at(mid)[0] > distortion else (lo, mid)
    (d_lo_mu, r_lo_mu), (d_hi_mu, r_hi_mu) = at(lo), at(hi)
    if d_lo_mu == d_hi_mu:
        return r_hi_mu
    w = (d_lo_mu - distortion) / (d_lo_mu - d_hi_mu)
    return (1 - w) * r_lo_mu + w * r_hi_mu
