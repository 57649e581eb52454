"""The example plugin against closed forms on the unit cube (h(X) = 0, a quantizer's exact
rate and distortion), and through rdbench itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdbench.evaluation import evaluate_codec
from rdbench.registry import get_registry
from rdbench.targets import Target


def _make(kind: str, name: str, **settings):
    entry = get_registry().get(kind, name)
    return entry.create(entry.record.settings("default", settings))


def test_the_plugin_is_discovered_through_its_entry_point():
    registry = get_registry()
    owners = {
        registry.get(kind, name).plugin.distribution
        for kind, name in (("source", "example-uniform"), ("estimator", "example-slb"), ("codec", "example-usq"))
    }
    assert owners == {"rdbench-example-plugin"}


@pytest.mark.parametrize("dimensions", [1, 2, 3])
def test_the_shannon_lower_bound_of_the_unit_cube(dimensions):
    """h(X) = 0 bits, so R_SLB(D) = -(m/2) log2(2 pi e D / m). The nearest-neighbour estimate
    of h on 20,000 samples is within 0.04 bit per dimension (its bias on a bounded support:
    neighbour balls that reach past the cube's faces)."""
    source = _make("source", "example-uniform", dimensions=dimensions)
    target = Target.parse("D/Dmax=0.05").resolve(source)
    (point,) = _make("estimator", "example-slb").estimate(source, target, seed=0)
    exact = -(dimensions / 2) * math.log2(2 * math.pi * math.e * target.distortion / dimensions)
    assert point.bound == "lower" and point.distortion == target.distortion
    assert abs(point.details["entropy_bits"] - source.differential_entropy_bits) < 0.04 * dimensions
    assert point.rate_bits == pytest.approx(exact, abs=0.04 * dimensions)


def test_the_quantizer_codes_at_its_closed_form_rate_and_distortion():
    """On [0, 1]^m with step s (cells at multiples of s, the two end cells halved): the error
    is uniform in each cell, D = m s^2 / 12, and the index entropy is m (log2(1/s) + s) bits."""
    source = _make("source", "example-uniform", dimensions=2)
    target = Target.parse("D/Dmax=0.01").resolve(source)
    point = evaluate_codec(_make("codec", "example-usq"), source, target, seed=0, n_test=20_000)
    step = point.details["step"]
    assert point.bound == "operational"
    assert point.distortion == pytest.approx(2 * step**2 / 12, rel=0.03)
    assert point.distortion == pytest.approx(target.distortion, rel=0.03)
    assert point.rate_bits == pytest.approx(2 * (math.log2(1 / step) + step), abs=0.02)


def test_the_quantizer_is_a_quarter_bit_per_component_above_the_bound_at_high_rate():
    """ECSQ's high-rate gap to the Shannon lower bound (h = 0 here): 1/2 log2(pi e / 6) = 0.254
    bit per component, plus the step s per component that the halved end cells cost."""
    source = _make("source", "example-uniform", dimensions=2)
    target = Target.parse("D/Dmax=0.001").resolve(source)
    point = evaluate_codec(_make("codec", "example-usq"), source, target, seed=0, n_test=20_000)
    slb = -(2 / 2) * math.log2(2 * math.pi * math.e * point.distortion / 2)
    expected = 2 * (0.5 * math.log2(math.pi * math.e / 6) + point.details["step"])
    assert point.rate_bits - slb == pytest.approx(expected, abs=0.02)


def test_a_corrupted_stream_is_refused():
    source = _make("source", "example-uniform")
    codec = _make("codec", "example-usq")
    codec.fit(source, Target.parse("D/Dmax=0.05").resolve(source), seed=0)
    message = codec.encode(source.sample(100, 0, "test"))
    with pytest.raises(ValueError):
        codec.decode(message[: len(message) // 2])
    assert np.array_equal(codec.decode(message), codec.decode(bytes(message)))
