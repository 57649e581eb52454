"""From a target to a Lagrangian slope: the exact, Gaussian and high-rate rules and the tangent point."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdbench import Source, SquaredError
from rdbench.registry import get_registry
from rdbench.slopes import (
    EXACT,
    GAUSSIAN,
    HIGH_RATE,
    HIGH_RATE_TANGENT,
    TARGET,
    Slope,
    tangent_distortion,
    target_slope,
)
from rdbench.targets import Target


class Unknown(Source):
    """N(0, diag(4, 1, 0.01)) that does not declare its R(D)."""

    shape = (3,)
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).normal(size=(n, 3)) * np.array([2.0, 1.0, 0.1])


def test_without_an_exact_slope_the_samples_gaussian_slope_is_used():
    """Variances (4, 1, 0.01) at D = 0.09: the smallest component lies under the water, so
    theta = (0.09 - 0.01) / 2 = 0.04 and lambda = log2(e) / (2 theta); the high-rate rule
    (all three active, theta = 0.03) is a third steeper."""
    source = Unknown()
    target = Target.parse("D=0.09").resolve(source)
    slope = target_slope(source, target, source.sample(200_000, 0))
    assert slope.rule == GAUSSIAN
    assert slope.bits == pytest.approx(math.log2(math.e) / (2 * 0.04), rel=0.01)
    high = target_slope(source, target)
    assert high.rule == HIGH_RATE and high.bits == pytest.approx(math.log2(math.e) / (2 * 0.03))
    # beyond the sum of the variances no component is active: the high-rate rule remains
    assert target_slope(source, Target.parse("D=6").resolve(source), source.sample(1000, 0)).rule == HIGH_RATE


def test_exact_and_target_slopes_come_first():
    m20 = get_registry().get("source", "gaussian-m20").create({})
    target = Target.parse("R=2").resolve(m20)
    exact = target_slope(m20, target, m20.sample(1000, 0))
    assert exact.rule == EXACT and exact.bits == pytest.approx(abs(m20.slope(target.distortion)))
    assert target_slope(m20, Target.parse("slope=3"), m20.sample(1000, 0)) == Slope(3.0, TARGET)


def test_tangent_point_of_a_slope():
    """Unequal variances: the exact tangent point differs from the high-rate one k / lambda."""
    m20 = get_registry().get("source", "gaussian-m20").create({})
    distortion = m20.distortion_at_rate(2.0)
    slope = Slope(abs(m20.slope(distortion)), TARGET)
    assert tangent_distortion(m20, slope) == (pytest.approx(distortion, rel=1e-9), "exact tangent")
    d, rule = tangent_distortion(Unknown(), Slope(3 / math.log(2), TARGET))
    assert rule == HIGH_RATE_TANGENT and d == pytest.approx(0.5)  # k / lambda_nats = 1.5 / 3
