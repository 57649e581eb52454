"""The sandwich bounds: both hold on a 2-d Gaussian, the mode search finds a known global
maximum, refusal on non-squared-error sources, NaN handling, and a CLI run."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


from conftest import run_smoke  # noqa: E402
from rdbench import Source, SquaredError  # noqa: E402
from rdbench.registry import get_registry  # noqa: E402
from rdbench.targets import Target  # noqa: E402
from rdbench_plugins.sandwich.lower import SandwichLower, batch_statistics  # noqa: E402
from rdbench_plugins.sandwich.mode_search import global_mode, log_mixture  # noqa: E402
from rdbench_plugins.sandwich.slopes import HIGH_RATE_TANGENT, TARGET, Slope, tangent_distortion  # noqa: E402
from rdbench_plugins.sandwich.upper import SandwichUpper  # noqa: E402

UPPER_SMOKE = dict(steps=400, n_train=4096, n_val=1024, n_test=4096, hidden=32)
LOWER_SMOKE = dict(steps=200, k=256, train_k=256, n_train=4096, eval_batches=20, alpha_batches=5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def source(name, **settings):
    return get_registry().get("source", name).create(settings)


def test_both_bounds_hold_on_a_2d_gaussian():
    gauss = source("gaussian", variances=[1.0, 1.0])
    slope = abs(gauss.slope(gauss.distortion_at_rate(1.0)))  # the tangent at R = 1 bit
    target = Target.parse(f"slope={slope}").resolve(gauss)

    (upper,) = SandwichUpper(**UPPER_SMOKE).estimate(gauss, target, seed=0)
    exact = gauss.rate_distortion(upper.distortion)
    se = upper.details["gap_se_bits"]
    assert upper.bound == "upper" and upper.details["lambda_bits"] == pytest.approx(slope)
    assert exact - 2 * se <= upper.rate_bits <= exact + 0.2
    assert upper.rate_lower_bits == pytest.approx(upper.rate_bits - 2 * se)

    (lower,) = SandwichLower(**LOWER_SMOKE).estimate(gauss, target, seed=0)
    details = lower.details
    assert lower.bound == "lower" and details["distortion_rule"] == "exact tangent"
    assert lower.distortion == pytest.approx(gauss.distortion_at_rate(1.0))
    exact = gauss.rate_distortion(lower.distortion)
    assert exact - 0.6 <= lower.rate_bits <= exact + 2 * details["intercept_se_bits"]
    assert lower.rate_upper_bits >= exact - 0.6
    assert details["intercept_ceiling_bits"] == 8.0 and not details["near_ceiling"]
    assert lower.rate_ceiling_bits == pytest.approx(8.0 - slope * lower.distortion)
    assert details["intercept_bits"] <= details["plug_in_intercept_bits"] + 1e-9  # log x <= x/a + log a - 1


def test_lower_bound_flags_points_near_its_log_k_ceiling():
    """k = 16 at R = 4: the exact intercept R + lambda D = 4 + 1.44 bits is above log2 16, and
    the estimate, capped by it, comes out above half of it."""
    gauss = source("gaussian", variances=[1.0, 1.0])
    slope = abs(gauss.slope(gauss.distortion_at_rate(4.0)))
    settings = {**LOWER_SMOKE, "k": 16, "train_k": 16, "eval_batches": 50, "alpha_batches": 10}
    (point,) = SandwichLower(**settings).estimate(gauss, Target.parse(f"slope={slope}"), seed=0)
    assert point.details["near_ceiling"] and point.details["intercept_ceiling_bits"] == 4.0
    assert point.details["intercept_bits"] <= 4.0 and point.rate_bits <= point.rate_ceiling_bits


def test_mode_search_finds_the_global_maximum_of_a_known_mixture():
    # Two unit-weight centroids at (+-0.5, 0) with lam = 1 (kernel std 1/sqrt(2) > 0.5) merge
    # into one mode at the origin, c = 2 exp(-0.25) = 1.558, which is not a centroid. A decoy
    # centroid far away has weight 1.5: the best *centroid* (1.5 > 1 + e^-1 = 1.368), but a
    # lower mode than the merged one.
    x = torch.tensor([[0.5, 0.0], [-0.5, 0.0], [20.0, 3.0]], dtype=torch.float64)
    log_w = torch.log(torch.tensor([1.0, 1.0, 1.5], dtype=torch.float64))
    assert int(torch.argmax(log_mixture(x, x, log_w, 1.0))) == 2
    mode = global_mode(x, log_w, 1.0)
    assert mode.converged
    assert mode.y.tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert float(mode.log_value) == pytest.approx(math.log(2) - 0.25, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mode_search_beats_a_fine_grid_on_random_mixtures(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 2, generator=g, dtype=torch.float64)
    log_w = torch.randn(64, generator=g, dtype=torch.float64)
    lam = 4.0
    mode = global_mode(x, log_w, lam)
    axis = torch.linspace(-4, 4, 801, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    assert mode.converged
    assert float(mode.log_value) >= float(log_mixture(grid, x, log_w, lam).max()) - 1e-12
    # the training shortcut (a few starts, few iterations) never reports more than the search
    quick = global_mode(x, log_w, lam, starts=4, max_iterations=5)
    assert float(quick.log_value) <= float(mode.log_value) + 1e-12


def test_an_unconverged_mode_search_is_an_error():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 2, generator=g, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="did not converge"):
        batch_statistics(x, torch.zeros(1, 64, dtype=torch.float64), 4.0, max_iterations=1, tolerance=1e-6)


def test_tangent_point_of_a_slope():
    """Unequal variances: the exact tangent point differs from the high-rate one k / lambda."""
    m20 = source("gaussian-m20")
    distortion = m20.distortion_at_rate(2.0)
    slope = Slope(abs(m20.slope(distortion)), TARGET)
    assert tangent_distortion(m20, slope) == (pytest.approx(distortion, rel=1e-9), "exact tangent")
    d, rule = tangent_distortion(PlainGaussian(), Slope(2 / math.log(2), TARGET))
    assert rule == HIGH_RATE_TANGENT and d == pytest.approx(0.5)  # k / lambda_nats = 1 / 2


@pytest.mark.parametrize("name", ["laplace", "bernoulli"])
def test_lower_bound_refuses_other_distortions(name):
    src = source(name)
    target = Target.parse("R=0.5").resolve(src)
    with pytest.raises(ValueError, match="squared_error"):
        SandwichLower(**LOWER_SMOKE).estimate(src, target, seed=0)


def test_upper_bound_refuses_hamming():
    src = source("bernoulli")
    with pytest.raises(ValueError, match="hamming"):
        SandwichUpper(**UPPER_SMOKE).estimate(src, Target.parse("R=0.5").resolve(src), seed=0)


def test_upper_bound_on_absolute_error_without_slope_method():
    """Laplace: R(D) exact but no ``slope`` method (central difference), absolute error."""
    src = source("laplace")
    (point,) = SandwichUpper(**UPPER_SMOKE).estimate(src, Target.parse("R=1").resolve(src), seed=0)
    assert point.details["lambda_initial_bits"] == pytest.approx(math.log2(math.e) / 0.5, rel=1e-6)
    assert point.rate_bits >= src.rate_distortion(point.distortion) - 2 * point.details["gap_se_bits"]


class PlainGaussian(Source):
    """N(0, I_2) without an exact R(D): the upper bound calibrates lambda on validation data."""

    shape = (2,)
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).normal(size=(n, 2))


def test_upper_bound_calibrates_lambda_without_exact_rd():
    (point,) = SandwichUpper(**UPPER_SMOKE).estimate(PlainGaussian(), Target.parse("D=0.5"), seed=0)
    details = point.details
    assert details["lambda_rule"] == "high-rate slope" and len(details["calibration"]) == 3
    assert details["lambda_initial_bits"] == pytest.approx(2 / math.log(2))  # k / D nats, k = 2/2
    assert point.distortion == pytest.approx(0.5, rel=0.15)


class NaNSource(Source):
    shape = (2,)
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        x = self.rng(seed, split).normal(size=(n, 2))
        x[::7] = np.nan
        return x


@pytest.mark.parametrize("kind", ["upper", "lower"])
def test_nan_is_an_error_not_a_number(kind):
    estimator = SandwichUpper(**UPPER_SMOKE) if kind == "upper" else SandwichLower(**LOWER_SMOKE)
    with pytest.raises(FloatingPointError, match="not finite"):
        estimator.estimate(NaNSource(), Target.parse("slope=2"), seed=0)


def test_cli_smoke_run(tmp_path):
    out = tmp_path / "out"
    cells = run_smoke(out, "--sources", "gaussian", "--estimators", "sandwich-upper,sandwich-lower", "--codecs", "none")
    assert len(cells) == 4 and all(c["status"] == "ok" for c in cells)
    bounds = sorted(c["points"][0]["bound"] for c in cells)
    assert bounds == ["lower", "lower", "upper", "upper"]
