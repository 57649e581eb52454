"""The ``wgd`` estimator: the weighted dual, agreement with Blahut-Arimoto, particles, accuracy."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rdbench import Source, SquaredError  # noqa: E402
from rdbench.interfaces import DiscreteModel  # noqa: E402
from rdbench.registry import get_registry  # noqa: E402
from rdbench.targets import Target  # noqa: E402
from rdbench.units import to_nats  # noqa: E402
from rdbench_plugins._dual import channel_stats, solve_beta  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ThreePoints(Source):
    """X in {0, 1, 3} with pmf (0.5, 0.3, 0.2), squared error; BA's reproductions: a grid of
    step 0.01 on [-0.5, 3.5], fine enough that BA on it is exact to about 1e-4 bit (an atom
    of the optimal law off the grid by at most 0.005 costs at most lambda 0.005^2 bits)."""

    shape = (1,)
    distortion = SquaredError()
    _x = np.array([[0.0], [1.0], [3.0]])
    _p = np.array([0.5, 0.3, 0.2])

    def sample(self, n, seed, split="train"):
        return self._x[self.rng(seed, split).choice(3, size=n, p=self._p)]

    def discrete(self):
        grid = np.linspace(-0.5, 3.5, 401)[:, None]
        return DiscreteModel(pmf=self._p, alphabet=self._x, reproductions=grid)


def _lagrangian(point, slope_bits):
    return point.rate_bits + slope_bits * point.distortion


def _wgd(**settings):
    entry = get_registry().get("estimator", "wgd")
    # settings the record leaves to the source's kind (None) take the class's defaults
    defaults = {k: v for k, v in entry.record.settings("default").items() if v is not None}
    return entry.create({**defaults, **settings})


def test_weighted_channel_stats_match_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(7, 5, generator=g, dtype=torch.float64) * 4
    w = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    w /= w.sum()
    beta = torch.tensor(-1.7, dtype=torch.float64)
    stats = channel_stats(d, beta, None, w.log())
    terms = w * torch.exp(beta * d)
    q = terms / terms.sum(1, keepdim=True)
    torch.testing.assert_close(stats.lme, terms.sum(1).log())
    torch.testing.assert_close(stats.weights, q)
    torch.testing.assert_close(stats.distortion, (q * d).sum(1))
    torch.testing.assert_close(stats.rate(beta), (q * (q / w).log()).sum(1))
    # Row weights: the solved slope meets the target under the pmf of the rows.
    p = torch.tensor([0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], dtype=torch.float64)
    sol = solve_beta(d, 1.6, log_weights=w.log(), row_weights=p)
    stats = channel_stats(d, sol.beta, None, w.log())
    assert bool(sol.converged) and float(stats.distortion @ p) == pytest.approx(1.6, rel=1e-4)


def test_wgd_agrees_with_blahut_arimoto_on_a_discrete_source():
    """Both solve the same problem exactly here: BA on a fine grid, WGD (hybrid, full batch on
    the pmf, read out exactly) with free particles. Their Lagrangians R + lambda D agree to
    1e-3 bit, as do their rates at a distortion target."""
    source, slope = ThreePoints(), 2.0
    ba = get_registry().get("estimator", "blahut-arimoto").create({"tol_bits": 1e-5, "max_iter": 20_000})
    wgd = _wgd(n_particles=32, steps=1500, warm_steps=800, hybrid=True)
    targets = [Target.parse(f"slope={slope}"), Target.parse("D=0.3")]
    ba_points = [p[0] for p in ba.curve(source, targets, 0)]
    wgd_points = [p[0] for p in wgd.curve(source, targets, 0)]
    assert all(p.details["certificate_gap_bits"] <= 1e-4 for p in ba_points)
    assert _lagrangian(wgd_points[0], slope) == pytest.approx(_lagrangian(ba_points[0], slope), abs=1e-3)
    assert wgd_points[1].distortion == pytest.approx(0.3, rel=1e-4)
    assert wgd_points[1].rate_bits == pytest.approx(ba_points[1].rate_bits, abs=1e-3)


def test_hybrid_reaches_a_lower_lagrangian_than_plain_wgd_at_equal_steps():
    """A Blahut-Arimoto step never raises the functional for fixed particles, and uniform
    weights cannot give the three atoms their masses: at equal steps the hybrid is lower."""
    source, slope = ThreePoints(), 2.0
    target = [Target.parse(f"slope={slope}")]
    plain = _wgd(n_particles=16, steps=40, hybrid=False).curve(source, target, 0)[0][0]
    hybrid = _wgd(n_particles=16, steps=40, hybrid=True).curve(source, target, 0)[0][0]
    assert _lagrangian(hybrid, slope) < _lagrangian(plain, slope)


def test_particles_concentrate_on_the_sphere_at_slope_one_over_sigma2():
    """At |dR/dD| = 1/(2 sigma^2) nats (squared error summed over components) the optimal
    reproduction law is the law of U itself: the particles gather on the unit circle."""
    source = get_registry().get("source", "deconv-sphere-d2").create({})
    slope_bits = 1.0 / (2 * 0.1) / math.log(2)
    point = _wgd(n_particles=256, steps=300, batch=4096, n_eval=4096).curve(
        source, [Target.parse(f"slope={slope_bits}")], 0
    )[0][0]
    y = np.load(io.BytesIO(point.artifacts["particles.npz"]), allow_pickle=False)["y"]
    off_circle = np.abs(np.linalg.norm(y, axis=1) - 1.0).mean()
    start = np.abs(np.linalg.norm(source.sample(256, 0, "train"), axis=1) - 1.0).mean()
    assert off_circle < 0.05 < 0.2 < start, (off_circle, start)
    assert point.details["slope_bits"] == pytest.approx(slope_bits)


def test_wgd_on_a_2d_gaussian_is_accurate_and_training_matters():
    """Within 0.1 bit of R(D) at R = 1 and 3 on N(0, diag(1, 0.5)). With a step of ~0 the
    particles stay at their jittered starting samples, a law close to P_X: at R = 1, where the
    optimal one is much narrower, the error is several times larger."""
    source = get_registry().get("source", "gaussian").create({"variances": [1.0, 0.5]})
    targets = [Target.parse("R=1").resolve(source), Target.parse("R=3").resolve(source)]
    budget = {"n_particles": 256, "steps": 300, "warm_steps": 150, "batch": 4096, "n_eval": 8192}
    trained = [p[0] for p in _wgd(**budget).curve(source, targets, 0)]
    frozen = [p[0] for p in _wgd(**budget, lr=1e-9).curve(source, targets, 0)]
    for t, point, still in zip(targets, trained, frozen):
        assert point.distortion == pytest.approx(t.distortion, rel=1e-3)
        assert abs(point.rate_bits - t.value) < 0.1
        assert point.details["displacement"] > 10 * still.details["displacement"]
        assert point.rate_ceiling_bits == pytest.approx(8.0)
        assert point.details["warm_start"] == (t.value == 1)
    assert frozen[0].rate_bits - 1 > 3 * abs(trained[0].rate_bits - 1) + 0.05


def test_wgd_reads_out_on_fresh_test_samples():
    source = get_registry().get("source", "gaussian").create({})
    point = _wgd(n_particles=64, steps=20, batch=512, n_eval=1000).estimate(
        source, Target.parse("R=1").resolve(source), 0
    )[0]
    assert point.details["n_eval"] == 1000 and point.details["readout"] == "test samples"
    assert point.details["rate_stderr_bits"] > 0


def test_wgd_refuses_hamming_and_non_bool_hybrid():
    bernoulli = get_registry().get("source", "bernoulli").create({})
    with pytest.raises(ValueError, match="wgd"):
        _wgd(steps=1).estimate(bernoulli, Target.parse("R=0.5").resolve(bernoulli), 0)
    with pytest.raises(ValueError, match="hybrid"):
        _wgd(hybrid="yes")
    assert to_nats(1.0) == pytest.approx(math.log(2))
