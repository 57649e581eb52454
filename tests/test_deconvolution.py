"""Deconvolution sources: h(X) against independent Monte Carlo, and where R(D) is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench.units import LOG2E
from rdbench_plugins.analytic_sources.deconvolution import MixtureDeconvolution, SphereDeconvolution


def _sphere_log_density_funk_hecke(x: np.ndarray, sigma2: float) -> np.ndarray:
    """ln p(x) of U + N(0, sigma2 I), U uniform on the unit sphere, without Bessel functions:
    E_u exp(k u.e) = c_d int_{-1}^{1} e^(k t) (1 - t^2)^((d-3)/2) dt (Funk-Hecke), by a
    Gauss-Jacobi rule of 200 nodes."""
    d = x.shape[1]
    a = 0.5 * (d - 3)
    t, w = special.roots_jacobi(200, a, a)
    c = math.exp(special.gammaln(0.5 * d) - 0.5 * math.log(math.pi) - special.gammaln(0.5 * (d - 1)))
    r = np.linalg.norm(x, axis=1)
    k = r / sigma2
    log_mean = special.logsumexp(k[:, None] * t[None, :], b=w[None, :], axis=1) + math.log(c)
    return -0.5 * d * math.log(2 * math.pi * sigma2) - (r * r + 1) / (2 * sigma2) + log_mean


@pytest.mark.parametrize("d", [2, 5, 10])
def test_sphere_entropy_matches_monte_carlo(d):
    """h(X) by the radial Bessel integral against -mean ln p(X) over 200,000 draws with p by
    an angular quadrature: within 4 standard errors (about 0.01 bit)."""
    source = SphereDeconvolution(d, 0.1)
    x = source.sample(200_000, 7, "test")
    log_p = _sphere_log_density_funk_hecke(x, 0.1)
    h_mc, se = -log_p.mean() * LOG2E, log_p.std() / math.sqrt(len(log_p)) * LOG2E
    assert abs(source.entropy_bits - h_mc) <= 4 * se, (source.entropy_bits, h_mc, se)
    assert source.entropy_error_bits < 1e-8
    # The two densities agree pointwise too (the formula, not just its mean).
    np.testing.assert_allclose(source.log_density(np.linalg.norm(x[:1000], axis=1)), log_p[:1000], atol=1e-8)


def test_mixture_entropy_matches_monte_carlo():
    source = MixtureDeconvolution()
    x = source.sample(200_000, 3, "test")
    log_p = source.log_density(x)
    h_mc, se = -log_p.mean() * LOG2E, log_p.std() / math.sqrt(len(log_p)) * LOG2E
    assert abs(source.entropy_bits - h_mc) <= 4 * se
    # Four well-separated points: h(X) is just below 2 bits + h(N(0, 0.1 I_2)).
    gaussian = math.log2(2 * math.pi * math.e * 0.1)
    assert 1.9 < source.entropy_bits - gaussian < 2.0


def test_rate_distortion_exact_only_below_d_sigma2():
    source = SphereDeconvolution(2, 0.1)
    edge = source.exact_limit
    assert edge == pytest.approx(0.2)
    assert source.d_max == pytest.approx(1.2)
    assert source.rate_distortion(edge * 1.01) is None
    assert source.rate_distortion(source.d_max) == 0.0
    # The Shannon lower bound: each halving of D adds d/2 = 1 bit.
    assert source.rate_distortion(edge / 2) - source.rate_distortion(edge) == pytest.approx(1.0)
    assert source.rate_distortion(edge) == pytest.approx(source.exact_rate_bits)
    for rate in (2.5, 3.0, 4.0):
        assert source.rate_distortion(source.distortion_at_rate(rate)) == pytest.approx(rate)
    assert source.distortion_at_rate(source.exact_rate_bits - 0.1) is None
    assert source.slope(0.1) == pytest.approx(LOG2E / 0.1)
    assert source.slope(0.3) is None


def test_d_max_is_the_spread_of_samples():
    for source in (SphereDeconvolution(5, 0.1), MixtureDeconvolution()):
        x = source.sample(100_000, 0, "train")
        spread = np.square(x - x.mean(0)).sum(1).mean()
        assert spread == pytest.approx(source.d_max, rel=0.01)


@pytest.mark.parametrize("name", ["deconv-sphere-d2", "deconv-sphere-d5", "deconv-sphere-d10", "deconv-mixture"])
def test_presets_default_targets_lie_in_the_exact_range(name):
    entry = get_registry().get("source", name)
    source = entry.create(entry.record.settings("default"))
    for profile in ("smoke", "default", "paper"):
        for text in entry.record.targets[profile]:
            target = Target.parse(text).resolve(source)
            assert target.distortion <= source.exact_limit
            assert source.rate_distortion(target.distortion) is not None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="noise_variance"):
        SphereDeconvolution(2, 0.0)
    with pytest.raises(ValueError, match="at most 3"):
        MixtureDeconvolution([[0, 0, 0, 0]])
