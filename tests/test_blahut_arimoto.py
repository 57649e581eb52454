"""The blahut-arimoto estimator: exact discrete curves, the certificate, chunking, the distance
cache, the empirical mode, and whole curves (one problem, warm starts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from rdbench import Hamming, Source, SquaredError
from rdbench.interfaces import DiscreteModel
from rdbench.records import EstimatorRecord
from rdbench.targets import Target
from rdbench.units import LN2
from rdbench_plugins.analytic_sources.discrete import BernoulliSource
from rdbench_plugins.analytic_sources.gaussian import paper_m20
from rdbench_plugins.blahut_arimoto import rdbench_estimators
from rdbench_plugins.blahut_arimoto.algorithm import LOG_ZERO, BAProblem
from rdbench_plugins.blahut_arimoto.estimator import BlahutArimoto


def h2(t: float) -> float:
    """Binary entropy in bits."""
    return 0.0 if t in (0.0, 1.0) else -t * math.log2(t) - (1 - t) * math.log2(1 - t)


class Categorical(Source):
    """Symbols 0..M-1 with probabilities pmf, Hamming distortion: R(D) = H(P) - h(D) - D log2(M-1)."""

    shape = ()
    distortion = Hamming()

    def __init__(self, pmf: list[float]) -> None:
        self.pmf = np.asarray(pmf, dtype=np.float64)

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).choice(len(self.pmf), size=n, p=self.pmf)

    def discrete(self) -> DiscreteModel:
        symbols = np.arange(len(self.pmf))
        return DiscreteModel(self.pmf, symbols, symbols)

    def exact(self, d: float) -> float:
        entropy = float(-(self.pmf @ np.log2(self.pmf)))
        return max(entropy - h2(d) - d * math.log2(len(self.pmf) - 1), 0.0)


class Gaussian2(Source):
    """A continuous 2-dim Gaussian with squared error (no discrete model)."""

    shape = (2,)
    distortion = SquaredError()

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def sample(self, n, seed, split="train"):
        return self.scale * self.rng(seed, split).standard_normal((n, 2))


def at(d: float) -> Target:
    return Target.parse(f"D={d!r}")


def slope(bits_per_unit: float) -> Target:
    return Target.parse(f"slope={bits_per_unit!r}")


@pytest.mark.parametrize("d", [0.02, 0.1, 0.17])
def test_bernoulli_matches_closed_form_and_certificate(d):
    source = Categorical([0.8, 0.2])
    (point,) = BlahutArimoto().estimate(source, at(d), seed=0)
    point.validate()
    exact = h2(0.2) - h2(point.distortion)
    assert point.distortion == pytest.approx(d, rel=1e-4)
    assert abs(point.rate_bits - exact) < 1e-6
    assert point.rate_lower_bits - 1e-12 <= exact <= point.rate_upper_bits + 1e-12
    assert point.details["converged"] and point.details["certificate_gap_bits"] <= 1e-9
    assert point.details["mode"] == "discrete" and point.rate_ceiling_bits is None
    assert point.bound == "estimate"


def test_unconverged_run_reports_its_gap_and_still_brackets_the_curve():
    source = Categorical([0.8, 0.2])
    (point,) = BlahutArimoto(max_iter=3).estimate(source, at(0.1), seed=0)
    exact = h2(0.2) - h2(point.distortion)
    assert not point.details["converged"] and point.details["iterations"] == 3
    assert point.details["certificate_gap_bits"] > 1e-9
    assert point.rate_lower_bits <= exact <= point.rate_upper_bits


@pytest.mark.parametrize("d", [0.05, 0.2, 0.35])
def test_ternary_matches_closed_form(d):
    source = Categorical([0.5, 0.3, 0.2])  # closed form holds for D <= 2 * 0.2
    (point,) = BlahutArimoto().estimate(source, at(d), seed=0)
    exact = source.exact(point.distortion)
    assert abs(point.rate_bits - exact) < 1e-6
    assert point.rate_lower_bits - 1e-12 <= exact <= point.rate_upper_bits + 1e-12


def test_slope_target_is_in_bits_per_unit_distortion():
    source = Categorical([0.8, 0.2])
    (point,) = BlahutArimoto().estimate(source, slope(3.0), seed=0)
    d = point.distortion  # R'(D) = log2(D / (1 - D)) for the Bernoulli source
    assert math.log2((1 - d) / d) == pytest.approx(3.0, rel=1e-6)
    assert point.details["slope_bits"] == pytest.approx(3.0)


def test_curve_is_decreasing_and_convex():
    source = Categorical([0.5, 0.3, 0.2])
    points = [BlahutArimoto().estimate(source, slope(s), seed=0)[0] for s in (0.5, 1, 2, 3, 4, 6)]
    d = np.array([p.distortion for p in points])
    r = np.array([p.rate_bits for p in points])
    assert np.all(np.diff(d) < 0) and np.all(np.diff(r) > 0)  # steeper slope: lower D, higher R
    chords = np.diff(r) / np.diff(d)  # along decreasing D the chord slopes get steeper
    assert np.all(np.diff(chords) < 1e-9)


def test_rate_zero_beyond_dmax_and_error_below_dmin():
    source = Categorical([0.8, 0.2])
    (point,) = BlahutArimoto().estimate(source, at(5.0), seed=0)
    assert point.rate_bits == 0.0 and point.distortion == pytest.approx(0.2)
    with pytest.raises(ValueError, match="D_min"):
        problem = BAProblem(np.array([0.8, 0.2]), np.array([[0], [1]]), np.array([[0]]), Hamming())
        problem.solve_for_distortion(0.1)


def dense_reference(p, x, y, measure, s, iterations):
    """Textbook BA on the full matrix: returns log q, D, I, lower (nats) of the last channel."""
    d = measure.pairwise(x, y)
    log_q = np.full(len(y), -math.log(len(y)))
    for _ in range(iterations):
        log_channel = log_q - s * d
        log_z = logsumexp(log_channel, axis=1)
        channel = np.exp(log_channel - log_z[:, None])  # P(y|x)
        q_out = p @ channel
        log_c = np.log(q_out) - log_q
        distortion = float(np.sum(p[:, None] * channel * d))
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(channel > 0, channel * np.log(channel / q_out), 0.0)
        mutual_information = float(p @ terms.sum(axis=1))
        lower = -s * distortion - float(p @ log_z) - float(log_c.max())
        log_q = np.log(q_out)
    return log_q, distortion, mutual_information, lower


@pytest.mark.parametrize("cache_blocks", [0, 9])
@pytest.mark.parametrize("measure", [SquaredError(), Hamming()])
def test_chunked_equals_dense_reference(measure, cache_blocks):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(61, 3)) if isinstance(measure, SquaredError) else rng.integers(0, 3, size=(61, 4))
    y = x[::2]
    p = rng.random(61)
    p /= p.sum()
    # 7 rows per chunk, 9 chunks; with 9 blocks allowed the whole matrix is kept
    chunked = BAProblem(p, x, y, measure, chunk_bytes=7 * 8 * len(y), cache_blocks=cache_blocks)
    assert chunked.rows_per_chunk == 7 and chunked.cached == (cache_blocks > 0)
    result = chunked.solve(0.7, tol=0.0, max_iter=25)
    log_q, distortion, mutual_information, lower = dense_reference(p, x, y, measure, 0.7, 25)
    assert result.iterations == 25 and not result.converged
    np.testing.assert_allclose(result.log_q, log_q, rtol=0, atol=1e-10)
    assert result.distortion == pytest.approx(distortion, abs=1e-10)
    assert result.rate_upper == pytest.approx(mutual_information, abs=1e-10)
    assert result.rate_lower == pytest.approx(lower, abs=1e-10)


def test_cached_distances_change_no_number():
    x = np.random.default_rng(2).normal(size=(50, 4))
    p = np.full(50, 1 / 50)
    kept = BAProblem(p, x, x, SquaredError(), chunk_bytes=8 * 8 * 50, cache_blocks=7)  # 7 chunks
    recomputed = BAProblem(p, x, x, SquaredError(), chunk_bytes=8 * 8 * 50, cache_blocks=6)
    assert kept.cached and not recomputed.cached
    a, b = (problem.solve_for_distortion(2.0, tol=0.0, max_iter=30) for problem in (kept, recomputed))
    assert np.array_equal(a.log_q, b.log_q) and (a.slope, a.distortion, a.rate_upper) == (
        b.slope,
        b.distortion,
        b.rate_upper,
    )


def agree(a, b) -> bool:
    """Whether two certified points of one curve agree to within their certificates: both gaps,
    plus the slope times the distortions' difference (each is within distortion_rtol of the target)."""
    slack = max(a.details["slope_bits"], b.details["slope_bits"]) * abs(a.distortion - b.distortion)
    gaps = a.details["certificate_gap_bits"] + b.details["certificate_gap_bits"]
    return abs(a.rate_bits - b.rate_bits) <= gaps + slack + 1e-12


def test_curve_on_bernoulli_matches_separate_estimates_and_the_exact_curve():
    source = BernoulliSource(0.2)
    targets = [Target.parse(t).resolve(source) for t in ("R=0.3", "R=0.5", "R=0.1")]
    estimator = BlahutArimoto()
    curve = estimator.curve(source, targets, seed=0)
    assert [len(points) for points in curve] == [1, 1, 1]
    for target, (point,) in zip(targets, curve):
        point.validate()
        (alone,) = estimator.estimate(source, target, seed=0)
        exact = source.rate_distortion(point.distortion)
        assert point.details["converged"] and point.details["certificate_gap_bits"] <= 1e-9
        assert point.distortion == pytest.approx(target.distortion, rel=1e-4)
        assert point.rate_lower_bits - 1e-12 <= exact <= point.rate_upper_bits + 1e-12
        assert agree(point, alone)


def test_curve_returns_points_in_the_order_given():
    source = Categorical([0.5, 0.3, 0.2])
    targets = [at(0.1), slope(3.0), at(5.0), at(0.02), at(0.3)]  # D = 5 is beyond D_max = 0.5
    estimator = BlahutArimoto()
    points = [p for (p,) in estimator.curve(source, targets, seed=0)]
    for target, point in zip(targets, points):
        if target.kind == "slope":
            assert point.details["slope_bits"] == pytest.approx(target.value)
        elif target.value >= 0.5:
            assert point.rate_bits == 0.0 and point.distortion == pytest.approx(0.5)
        else:
            assert point.distortion == pytest.approx(target.value, rel=1e-4)
        assert agree(point, estimator.estimate(source, target, seed=0)[0])
    rates = [p.rate_bits for p in points]
    assert rates[3] > rates[0] > rates[4] > rates[2] == 0.0
    # the slope target comes after the rate-0 point, which starts nothing: a cold start
    assert points[1] == estimator.estimate(source, targets[1], seed=0)[0]


def test_curve_warm_starts_along_the_curve():
    """From the highest rate down: the first solve is the cold one, every later one is shorter."""
    source = paper_m20()
    targets = [Target.parse(t).resolve(source) for t in ("R=2", "R=1", "R=4")]
    estimator = BlahutArimoto(n_samples=200)
    alone = [estimator.estimate(source, t, seed=0)[0] for t in targets]
    curve = [p for (p,) in estimator.curve(source, targets, seed=0)]
    assert curve[2] == alone[2]  # R = 4 is solved first, from the uniform start
    for warm, cold in zip(curve[:2], alone[:2]):
        assert warm.details["converged"] and cold.details["converged"]
        assert warm.details["iterations"] < cold.details["iterations"]
        assert agree(warm, cold)
    assert sum(p.details["iterations"] for p in curve) < sum(p.details["iterations"] for p in alone)


def test_warm_start_floor_keeps_a_low_dimensional_curve_converging():
    """In 2-D the high-rate solution nearly drops samples that lower rates need; started from
    it as is, BA regrows them so slowly that these solves run out of iterations. The floored
    start (BAProblem.warm_log_q) costs no more iterations than cold starts."""
    estimator = BlahutArimoto(n_samples=128, empirical_max_iter=500)
    targets = [at(1.0), at(0.2), at(0.5)]
    alone = [estimator.estimate(Gaussian2(), t, seed=3)[0] for t in targets]
    curve = [p for (p,) in estimator.curve(Gaussian2(), targets, seed=3)]
    assert all(p.details["converged"] for p in curve)
    assert all(agree(warm, cold) for warm, cold in zip(curve, alone))
    assert sum(p.details["iterations"] for p in curve) <= sum(p.details["iterations"] for p in alone)


def test_empirical_mode_records_ceiling_and_stays_below_it():
    estimator = BlahutArimoto(n_samples=64, empirical_max_iter=300)
    for target in (slope(0.5), slope(4.0), slope(1e6), at(0.5)):
        (point,) = estimator.estimate(Gaussian2(), target, seed=3)
        point.validate()
        assert point.rate_ceiling_bits == pytest.approx(math.log2(64))
        assert point.rate_bits <= point.rate_ceiling_bits
        assert point.details["mode"] == "empirical" and point.details["n_samples"] == 64
        assert 0.0 <= point.rate_lower_bits <= point.rate_bits
    assert point.distortion == pytest.approx(0.5, rel=1e-4)
    (steep,) = estimator.estimate(Gaussian2(), slope(1e6), seed=3)
    assert steep.rate_bits == pytest.approx(6.0, abs=1e-9)  # the identity channel: log2 n


def test_empirical_samples_are_reproducible():
    estimator = BlahutArimoto(n_samples=40, empirical_max_iter=50)
    a = estimator.estimate(Gaussian2(), slope(2.0), seed=7)[0]
    b = estimator.estimate(Gaussian2(), slope(2.0), seed=7)[0]
    assert (a.rate_bits, a.distortion) == (b.rate_bits, b.distortion)


def test_huge_slope_and_huge_distortions_stay_finite():
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        source = Categorical([0.5, 0.3, 0.2])
        (point,) = BlahutArimoto().estimate(source, slope(1e4 / LN2), seed=0)  # s = 1e4 nats
        assert point.rate_bits == pytest.approx(source.exact(0.0), abs=1e-9)
        far = BlahutArimoto(n_samples=30, empirical_max_iter=20)
        for target in (slope(1.0), slope(1e-6), at(1e7)):
            (point,) = far.estimate(Gaussian2(scale=1e4), target, seed=0)  # d ~ 1e8
            values = (point.rate_bits, point.distortion, point.rate_lower_bits, point.details["certificate_gap_bits"])
            assert all(math.isfinite(v) for v in values)
            point.validate()


def test_lower_bound_holds_for_outputs_that_underflowed():
    """A warm start with q_1 = exp(-1e4) = 0.0: c_1 must still count in the lower bound."""
    problem = BAProblem(np.array([0.8, 0.2]), np.array([[0], [1]]), np.array([[0], [1]]), Hamming())
    s = 3.0  # nats; the optimal q has both outputs
    result = problem.solve(s, np.array([0.0, LOG_ZERO]), tol=0.0, max_iter=1)
    assert np.all(np.isfinite(result.log_q)) and result.gap > 1.0
    exact_nats = (h2(0.2) - h2(result.distortion)) * LN2 if result.distortion < 0.2 else 0.0
    assert result.rate_lower <= exact_nats <= result.rate_upper + 1e-12
    revived = problem.solve(s, result.log_q)
    assert revived.converged and np.exp(revived.log_q[1]) > 0.1


def test_record_and_factory():
    (record,) = rdbench_estimators()
    assert isinstance(record, EstimatorRecord)
    record.validate()
    assert record.name == "blahut-arimoto" and record.curve
    assert {record.settings(p)["n_samples"] for p in ("smoke", "default", "paper")} == {300, 2000, 60000}
    estimator = record.load()(**record.settings("smoke"))
    assert isinstance(estimator, BlahutArimoto)
    for bad in ({"n_samples": 0}, {"n_samples": 2.5}, {"n_samples": True}, {"tol_bits": -1.0}):
        with pytest.raises(ValueError, match=f"blahut-arimoto.{next(iter(bad))}="):
            record.check_settings(bad)
