"""Tests of the built-in ``analytic-sources`` plugin: exact R(D) against independent computations."""

from __future__ import annotations

import importlib.metadata as md
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import entropy as scipy_entropy

from rdbench import AbsoluteError, Hamming, Source, SquaredError
from rdbench.records import PROFILES
from rdbench.registry import Registry
from rdbench.targets import Target
from rdbench_plugins.analytic_sources.discrete import BernoulliSource, MarySource
from rdbench_plugins.analytic_sources.entropy import entropy_bits, h2
from rdbench_plugins.analytic_sources.gaussian import (
    GaussianSource,
    paper_m20,
    paper_m40,
    paper_rcc,
    published_m20,
)
from rdbench_plugins.analytic_sources.laplace import LaplaceSource

TIED_SPECTRUM = [0.25, 4.0, 2.0, 1.0, 2.0, 0.01, 0.25]  # unsorted, with ties
PRESETS = [paper_m20, paper_m40, paper_rcc, published_m20]


def binary_entropy(p: float) -> float:
    return float(scipy_entropy([p, 1.0 - p], base=2))


# -- Gaussian: reverse water-filling ------------------------------------------------


@pytest.mark.parametrize("variances", [TIED_SPECTRUM, paper_m20().variances.tolist(), [2.0]])
def test_water_filling_matches_parametric_form(variances: list[float]) -> None:
    source = GaussianSource(variances)
    s2 = np.asarray(variances)
    for lam in np.geomspace(1e-5, 0.999 * s2.max(), 300):
        d = np.minimum(lam, s2).sum()
        r = np.maximum(0.0, 0.5 * np.log2(s2 / lam)).sum()
        assert source.rate_distortion(d) == pytest.approx(r, abs=1e-9)
        assert source.water_level(d) == pytest.approx(lam, rel=1e-9)
        assert source.slope(d) == pytest.approx(-math.log2(math.e) / (2 * lam), rel=1e-9)
        assert source.distortion_at_rate(r) == pytest.approx(d, rel=1e-10)


@pytest.mark.parametrize("d", [0.05, 0.4, 1.2, 3.0, 5.0])
def test_water_filling_matches_numeric_minimization(d: float) -> None:
    """min sum_k 1/2 log2(s_k / D_k) subject to sum_k D_k = D, 0 < D_k <= s_k."""
    s2 = np.array([3.0, 1.5, 0.6, 0.2])
    result = minimize(
        lambda dk: 0.5 * np.log2(s2 / dk).sum(),
        x0=d * s2 / s2.sum(),
        jac=lambda dk: -0.5 / (np.log(2) * dk),
        bounds=[(1e-12, s) for s in s2],
        constraints=[{"type": "eq", "fun": lambda dk: dk.sum() - d, "jac": lambda dk: np.ones_like(dk)}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert result.success, result.message
    assert GaussianSource(s2).rate_distortion(d) == pytest.approx(result.fun, abs=1e-6)


@pytest.mark.parametrize("make", PRESETS)
def test_distortion_at_rate_inverts_rate_distortion(make) -> None:
    source = make()
    for r in np.linspace(0.01, 40.0, 400):
        d = source.distortion_at_rate(r)
        assert 0 < d < source.d_max
        assert source.rate_distortion(d) == pytest.approx(r, rel=1e-10, abs=1e-10)
    for d in np.geomspace(1e-6, 1.0, 200) * source.d_max:
        assert source.distortion_at_rate(source.rate_distortion(d)) == pytest.approx(d, rel=1e-10)
    assert source.rate_distortion(source.d_max) == 0.0
    assert source.rate_distortion(2 * source.d_max) == 0.0
    assert source.distortion_at_rate(0.0) == source.d_max
    assert source.water_level(source.d_max) == pytest.approx(source.variances.max(), rel=1e-12)
    assert source.slope(2 * source.d_max) == 0.0
    assert not source.reproduction_variances(2 * source.d_max).any()


def test_gaussian_rd_is_decreasing_convex_with_matching_slope() -> None:
    source = GaussianSource(TIED_SPECTRUM)
    d = np.linspace(source.d_max / 2000, source.d_max, 2000)
    r = np.array([source.rate_distortion(x) for x in d])
    assert np.all(np.diff(r) < 0)
    assert np.all(np.diff(r, 2) > -1e-12)
    h = 1e-6
    for x in d[::97]:
        numeric = (source.rate_distortion(x + h) - source.rate_distortion(x - h)) / (2 * h)
        assert source.slope(x) == pytest.approx(numeric, rel=1e-5)


def test_reproduction_variances_give_mutual_information_rd() -> None:
    """I(X; Y) of the test channel X'_k = Y'_k + N(0, lambda) equals R(D), and E||X - Y||^2 = D."""
    source = paper_rcc()
    for d in (0.1, 1.0, 4.0):
        q = source.reproduction_variances(d)
        lam = source.water_level(d)
        active = q > 0
        mi = 0.5 * np.log2((q[active] + lam) / lam).sum()
        assert mi == pytest.approx(source.rate_distortion(d), rel=1e-12)
        assert (lam * active.sum() + source.variances[~active].sum()) == pytest.approx(d, rel=1e-12)


def test_gaussian_rejects_bad_input() -> None:
    for bad in ([], [1.0, 0.0], [1.0, -2.0], [1.0, math.inf], [[1.0, 2.0]]):
        with pytest.raises(ValueError, match="variances"):
            GaussianSource(bad)
    with pytest.raises(ValueError, match="rotate"):
        GaussianSource([1.0], rotate="yes")
    source = GaussianSource([1.0, 2.0])
    for d in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="distortion must be > 0"):
            source.rate_distortion(d)
    with pytest.raises(ValueError, match="rate"):
        source.distortion_at_rate(math.nan)


def test_rotated_samples_have_the_stated_covariance() -> None:
    source = paper_m20()
    v = source.rotation
    assert np.allclose(v.T @ v, np.eye(20), atol=1e-12)
    assert not np.allclose(v, np.eye(20))
    expected = (v * source.variances) @ v.T
    assert np.allclose(source.covariance, expected, atol=1e-14)
    n = 200_000
    x = source.sample(n, seed=3, split="train")
    assert x.shape == (n, 20) and x.dtype == np.float64
    sample_cov = x.T @ x / n
    se = np.sqrt((np.outer(np.diag(expected), np.diag(expected)) + expected**2) / n)
    assert np.all(np.abs(sample_cov - expected) < 6 * se)
    assert np.abs(x.mean(axis=0)).max() < 6 * np.sqrt(np.diag(expected).max() / n)


def test_gaussian_sampling_is_deterministic_and_splits_differ() -> None:
    source = GaussianSource(TIED_SPECTRUM, rotate=True, rotation_seed=7)
    a = source.sample(50, seed=1, split="train")
    assert np.array_equal(a, source.sample(50, seed=1, split="train"))
    assert np.array_equal(a, GaussianSource(TIED_SPECTRUM, rotate=True, rotation_seed=7).sample(50, 1, "train"))
    assert not np.allclose(a, source.sample(50, seed=1, split="test"))
    assert not np.allclose(a, source.sample(50, seed=2, split="train"))
    other = GaussianSource(TIED_SPECTRUM, rotate=True, rotation_seed=8)
    assert not np.allclose(source.rotation, other.rotation)
    assert source.sample(0, seed=1).shape == (0, len(TIED_SPECTRUM))


def test_presets_have_the_paper_spectra() -> None:
    m20, m40, rcc, pub = paper_m20(), paper_m40(), paper_rcc(), published_m20()
    assert m20.shape == (20,) and m20.rotate and m20.rotation_seed == 0
    assert m20.variances[0] == 4 * math.exp(-1 / 16) and m20.variances[19] == 4 * math.exp(-20 / 16)
    assert m40.shape == (40,) and not m40.rotate
    assert m40.variances[0] == 4 * math.exp(-1 / 4) and m40.variances[39] == 4 * math.exp(-10)
    assert rcc.shape == (20,) and not rcc.rotate
    assert rcc.variances[0] == 4 * math.exp(-1 / 16) and rcc.variances[19] == 4 * math.exp(-400 / 16)
    assert pub.shape == (20,) and pub.rotate
    assert pub.variances[0] == 4.0
    assert pub.variances[19] == pytest.approx(4 * math.exp(-19 / 2), rel=1e-14)
    assert m20.distortion == SquaredError()


# -- discrete sources ---------------------------------------------------------------


def blahut_arimoto_point(pmf: np.ndarray, slope: float, iters: int = 3000) -> tuple[float, float]:
    """(D, R) in bits on the R(D) curve of a Hamming source, at Lagrange slope -slope (nats)."""
    m = pmf.size
    dist = 1.0 - np.eye(m)
    q = np.full(m, 1.0 / m)
    for _ in range(iters):
        w = q * np.exp(-slope * dist)
        cond = w / w.sum(axis=1, keepdims=True)
        q = pmf @ cond
    d = float(pmf @ (cond * dist).sum(axis=1))
    r = float((pmf[:, None] * cond * np.log2(cond / q)).sum())
    return d, r


def test_bernoulli_rd_matches_binary_entropy() -> None:
    for p in (0.2, 0.5, 0.9):
        source = BernoulliSource(p)
        d_max = min(p, 1 - p)
        assert source.d_max == pytest.approx(d_max, rel=1e-15)
        for d in np.linspace(0.0, d_max, 51):
            assert source.rate_distortion(d) == pytest.approx(binary_entropy(p) - binary_entropy(d), abs=1e-12)
        assert source.rate_distortion(d_max + 0.01) == 0.0
        for r in (0.01, 0.3, binary_entropy(p) - 1e-3):
            assert source.rate_distortion(source.distortion_at_rate(r)) == pytest.approx(r, abs=1e-10)
    assert BernoulliSource(0.2).distortion_at_rate(0.8) is None  # above h(0.2) = 0.722 bits


def test_uniform_mary_matches_textbook_formula_on_whole_range() -> None:
    m = 4
    source = MarySource([1 / m] * m)
    assert source.closed_form_limit == source.d_max == pytest.approx(0.75)
    for d in np.linspace(0.0, 0.75, 76):
        expected = math.log2(m) - binary_entropy(d) - d * math.log2(m - 1)
        assert source.rate_distortion(d) == pytest.approx(max(expected, 0.0), abs=1e-12)


def test_mary_rd_matches_blahut_arimoto_and_has_a_gap() -> None:
    pmf = np.array([0.5, 0.3, 0.2])
    source = MarySource(pmf)
    assert source.closed_form_limit == pytest.approx(0.4) and source.d_max == pytest.approx(0.5)
    assert source.rate_distortion(0.0) == pytest.approx(scipy_entropy(pmf, base=2), abs=1e-12)
    for slope in (6.0, 3.0, 1.5, 1.0):
        d, r = blahut_arimoto_point(pmf, slope)
        exact = source.rate_distortion(d)
        if d <= 0.4:
            assert exact == pytest.approx(r, abs=1e-7)
            assert source.distortion_at_rate(r) == pytest.approx(d, abs=1e-6)
        else:  # BA lands in the region without closed form
            assert exact is None and r > 0
    assert source.rate_distortion(0.45) is None
    assert source.rate_distortion(0.5) == 0.0 and source.rate_distortion(0.7) == 0.0
    assert source.distortion_at_rate(0.01) is None  # its distortion lies in the gap
    assert source.distortion_at_rate(0.0) == pytest.approx(0.5)
    assert source.distortion_at_rate(source.rate_distortion(0.4)) == pytest.approx(0.4, rel=1e-12)


def test_mary_samples_model_and_validation() -> None:
    pmf = np.array([0.5, 0.3, 0.2])
    source = MarySource(pmf)
    x = source.sample(200_000, seed=0)
    assert x.shape == (200_000,) and x.dtype == np.int64
    freq = np.bincount(x, minlength=3) / x.size
    assert np.all(np.abs(freq - pmf) < 5 * np.sqrt(pmf * (1 - pmf) / x.size))
    assert np.array_equal(source.sample(100, seed=0), source.sample(100, seed=0))
    assert not np.array_equal(source.sample(100, seed=0), source.sample(100, seed=0, split="test"))
    model = source.discrete()
    assert np.array_equal(model.pmf, pmf) and np.array_equal(model.alphabet, [0, 1, 2])
    assert np.array_equal(model.reproductions, [0, 1, 2])
    assert source.distortion == Hamming()
    for bad in ([1.0], [0.5, 0.5, 0.0], [0.6, 0.6], [0.5, math.nan]):
        with pytest.raises(ValueError, match="pmf"):
            MarySource(bad)
    with pytest.raises(ValueError, match="Bernoulli"):
        BernoulliSource(1.0)
    with pytest.raises(ValueError, match=">= 0"):
        source.rate_distortion(-0.1)


def test_entropy_helpers() -> None:
    assert h2(0.0) == h2(1.0) == 0.0 and h2(0.5) == 1.0
    assert h2(0.11) == pytest.approx(binary_entropy(0.11), abs=1e-15)
    assert entropy_bits([0.5, 0.25, 0.25, 0.0]) == pytest.approx(1.5, abs=1e-15)
    with pytest.raises(ValueError):
        h2(1.5)
    with pytest.raises(ValueError):
        entropy_bits([0.5, 0.6])


# -- Laplace --------------------------------------------------------------------------


def test_laplace_rd_and_d_max() -> None:
    b = 2.5
    source = LaplaceSource(b)
    for d in np.geomspace(1e-4, 1.0, 30) * b:
        assert source.rate_distortion(d) == pytest.approx(math.log2(b / d), abs=1e-12)
        assert source.distortion_at_rate(source.rate_distortion(d)) == pytest.approx(d, rel=1e-12)
    assert source.rate_distortion(3 * b) == 0.0 and source.d_max == b
    n = 200_000
    x = source.sample(n, seed=5, split="test")
    assert x.shape == (n,) and x.dtype == np.float64
    assert abs(np.abs(x).mean() - b) < 5 * b / math.sqrt(n)  # E|X| = b, sd |X| = b
    assert abs(np.median(x)) < 0.02 * b
    assert source.distortion == AbsoluteError()
    with pytest.raises(ValueError):
        source.rate_distortion(0.0)
    with pytest.raises(ValueError, match="scale"):
        LaplaceSource(-1.0)


# -- the plugin -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Only this plugin, in strict mode (other built-in plugins are tested on their own)."""
    others = {ep.name for ep in md.entry_points(group="rdbench") if ep.name != "analytic-sources"}
    return Registry.discover(strict=True, disabled=others)


def test_plugin_is_discovered_through_its_entry_point(registry: Registry) -> None:
    entry = registry.get("source", "gaussian-m20")
    source = entry.create(entry.record.settings("default"))
    assert isinstance(source, Source) and source.shape == (20,)
    names = set(registry.entries("source"))
    assert names == {
        "gaussian", "gaussian-m20", "gaussian-m40", "gaussian-rcc", "gaussian-published-m20",
        "bernoulli", "mary", "laplace",
        "deconv-sphere-d2", "deconv-sphere-d5", "deconv-sphere-d10", "deconv-mixture",
    }  # fmt: skip


def test_every_record_builds_and_its_targets_resolve(registry: Registry) -> None:
    for name, entry in registry.entries("source").items():
        assert len(entry.record.default_targets("smoke")) <= 2, name
        for profile in PROFILES:
            source = entry.create(entry.record.settings(profile))
            assert source.has_exact_rd and source.d_max is not None, name
            for text in entry.record.default_targets(profile):
                target = Target.parse(text).resolve(source)
                assert 0 < target.distortion < source.d_max, (name, text)
                rate = source.rate_distortion(target.distortion)
                assert rate is not None and rate > 0, (name, text)
                if target.kind == "rate":
                    assert rate == pytest.approx(target.value, abs=1e-9), (name, text)


def test_plugin_module_is_cheap_to_import() -> None:
    code = (
        "import sys, rdbench_plugins.analytic_sources as p; "
        "heavy = [m for m in sys.modules if m.startswith('scipy') or m.startswith(p.__name__ + '.')]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
