"""The sandwich bounds: both hold on a 2-d Gaussian, the conv upper bound holds on images, the
lower bound learns its slope without an exact R(D) and clips at 0, the mode search finds a
known global maximum, refusal on non-squared-error sources, NaN handling, and a CLI run."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


from conftest import run_smoke  # noqa: E402

from rdbench import Source, SquaredError  # noqa: E402
from rdbench.leaderboard import point_status  # noqa: E402
from rdbench.registry import get_registry  # noqa: E402
from rdbench.slopes import GAUSSIAN, TARGET  # noqa: E402
from rdbench.targets import Target  # noqa: E402
from rdbench_plugins._conv import ConvDown, ConvUp  # noqa: E402
from rdbench_plugins._lagrange import WARM_RULE  # noqa: E402
from rdbench_plugins._networks import LinearPlusMLP  # noqa: E402
from rdbench_plugins.sandwich import upper as upper_module  # noqa: E402
from rdbench_plugins.sandwich.lower import LEARNED, SandwichLower, batch_statistics  # noqa: E402
from rdbench_plugins.sandwich.mode_search import _mean_shift, global_mode, log_mixture, mean_shift  # noqa: E402
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
    assert upper.bound == "upper" and upper.details["slope_bits"] == pytest.approx(slope)
    assert exact - 2 * se <= upper.rate_bits <= exact + 0.2
    assert upper.rate_lower_bits == pytest.approx(upper.rate_bits - 2 * se)

    (lower,) = SandwichLower(**LOWER_SMOKE).estimate(gauss, target, seed=0)
    details = lower.details
    assert lower.bound == "lower" and details["distortion_rule"] == "exact tangent"
    assert details["slope_rule"] == TARGET and details["slope_bits"] == details["slope_initial_bits"] == slope
    assert lower.distortion == pytest.approx(gauss.distortion_at_rate(1.0))
    exact = gauss.rate_distortion(lower.distortion)
    assert lower.rate_bits <= exact + 2 * details["intercept_se_bits"]  # how tight: the next test
    assert details["intercept_ceiling_bits"] == 8.0 and not details["near_ceiling"]
    assert lower.rate_ceiling_bits == pytest.approx(8.0 - slope * lower.distortion)
    assert details["intercept_bits"] <= details["plug_in_intercept_bits"] + 1e-9  # log x <= x/a + log a - 1


#: The lower bound with enough training and test batches of k = 2048 to be tight on N(0, I_2) at
#: R = 1 (3 s on one thread): LOWER_SMOKE stops 0.26-0.34 bit below R(D) over seeds 0-3.
LOWER_TIGHT = {**LOWER_SMOKE, "steps": 300, "k": 2048, "train_k": 512, "n_train": 8192}


def test_lower_bound_is_valid_and_within_0_3_bit_of_rd_on_a_2d_gaussian():
    """R(D) - rate_bits at the tangent point of R = 1 on N(0, I_2), measured 0.10-0.17 bit over
    seeds 0-5 (0.146 at seed 0; 0.96 untrained): at most 0.3 bit, so a bound 0.6 bit looser
    fails; and at least minus its 2-SE half-width (0.012 bit): a bound, not an estimate above."""
    gauss = source("gaussian", variances=[1.0, 1.0])
    slope = abs(gauss.slope(gauss.distortion_at_rate(1.0)))
    target = Target.parse(f"slope={slope}").resolve(gauss)
    (point,) = SandwichLower(**LOWER_TIGHT).estimate(gauss, target, seed=0)
    assert point.bound == "lower" and point.distortion == pytest.approx(gauss.distortion_at_rate(1.0))
    gap = gauss.rate_distortion(point.distortion) - point.rate_bits
    half_width = point.rate_bits - point.rate_lower_bits
    assert 0 < half_width < 0.05 and point.rate_upper_bits - point.rate_bits == pytest.approx(half_width)
    assert -half_width <= gap <= 0.3


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_mixture_at_a_steep_slope_matches_the_exact_log_sum_exp(dtype):
    # At lam = 500 nearly every term is below exp(-87) of its row's largest (the CPU's slow
    # exp path, avoided by raising them to exp(-70)): log c still matches torch.logsumexp in
    # float64 to rounding (values down to about -600 nats).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 3, generator=g, dtype=torch.float64)
    log_w = torch.randn(512, generator=g, dtype=torch.float64)
    y = torch.randn(300, 3, generator=g, dtype=torch.float64)
    exact = torch.logsumexp(log_w - 500.0 * torch.cdist(y, x).square(), -1)
    value = log_mixture(y.to(dtype), x.to(dtype), log_w.to(dtype), 500.0).double()
    assert torch.allclose(value, exact, rtol=1e-11 if dtype == torch.float64 else 1e-3, atol=1e-11)


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


@pytest.mark.parametrize("dims, lam", [(2, 0.5), (2, 20.0), (10, 0.3), (10, 3.0)])
def test_the_two_precision_search_finds_every_mode_the_plain_one_finds(dims, lam):
    """The single-precision climb with merged paths, then the double-precision polish, ends at
    the same modes as climbing every start in double precision (values within 1e-8 nats)."""
    g = torch.Generator().manual_seed(dims)
    x = torch.randn(512, dims, generator=g, dtype=torch.float64) * torch.linspace(2, 0.2, dims, dtype=torch.float64)
    log_w = torch.randn(512, generator=g, dtype=torch.float64)
    ends, values, _, converged = mean_shift(x, x, log_w, lam, 2000, 1e-4)
    plain_ends, plain_values, _, plain_converged = _mean_shift(x, x, log_w, lam, 2000, 1e-4)
    assert converged and plain_converged and ends.dtype == torch.float64
    assert float(values.max()) == pytest.approx(float(plain_values.max()), abs=1e-8)
    # almost every start ends at the mode it climbs to in double precision (a start near a
    # ridge between two basins may fall to the other side)
    assert float(((values - plain_values).abs() > 1e-6).double().mean()) <= 0.01


def test_an_unconverged_mode_search_is_an_error():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 2, generator=g, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="did not converge"):
        batch_statistics(x, torch.zeros(1, 64, dtype=torch.float64), 4.0, max_iterations=1, tolerance=1e-6)


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
    assert point.details["slope_initial_bits"] == pytest.approx(math.log2(math.e) / 0.5, rel=1e-6)
    gap = point.rate_bits - src.rate_distortion(point.distortion)
    assert -2 * point.details["gap_se_bits"] <= gap <= 0.25  # a bound, and a trained one: near the curve
    assert point.distortion == pytest.approx(0.5, rel=0.15)


class PlainGaussian(Source):
    """N(0, I_2) without an exact R(D): the upper bound starts at its samples' Gaussian slope and
    calibrates lambda on validation data."""

    shape = (2,)
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).normal(size=(n, 2))


def test_upper_bound_calibrates_lambda_without_exact_rd():
    (point,) = SandwichUpper(**UPPER_SMOKE).estimate(PlainGaussian(), Target.parse("D=0.5"), seed=0)
    details = point.details
    assert details["slope_rule"] == GAUSSIAN and len(details["calibration"]) == 3
    assert details["slope_initial_bits"] == pytest.approx(2 / math.log(2), rel=0.05)  # log2(e) / (2 * 0.25)
    assert point.distortion == pytest.approx(0.5, rel=0.15)


def test_upper_bound_curve_warm_starts_each_target_from_the_previous_model():
    """Along a curve the highest rate is fitted first; the next starts from its model with
    warm_fraction of the steps and its calibrated lambda times the slope ratio, and still
    calibrates onto its own target."""
    estimator = SandwichUpper(**UPPER_SMOKE)
    targets = [Target.parse("D=0.5"), Target.parse("D=0.25")]
    (low_rate,), (high_rate,) = estimator.curve(PlainGaussian(), targets, seed=0)
    assert not high_rate.details["warm_start"] and low_rate.details["warm_start"]
    assert low_rate.details["steps"] == round(0.4 * UPPER_SMOKE["steps"])
    assert low_rate.details["slope_rule"] == f"{WARM_RULE} ({GAUSSIAN})"
    slope_ratio = 0.25 / 0.5  # the samples' Gaussian R(D) slopes |dR/dD| go as 1/D
    assert low_rate.details["slope_initial_bits"] == pytest.approx(
        high_rate.details["slope_bits"] * slope_ratio, rel=1e-6
    )
    assert low_rate.distortion == pytest.approx(0.5, rel=0.15) and high_rate.distortion == pytest.approx(0.25, rel=0.15)
    assert low_rate.rate_bits < high_rate.rate_bits


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
    # both bounds are curve methods: one cell each holds both targets, from the highest rate down
    assert len(cells) == 2 and all(c["status"] == "ok" for c in cells)
    bounds = sorted(p["bound"] for c in cells for p in c["points"])
    assert bounds == ["lower", "lower", "upper", "upper"]
    for cell in cells:
        warm = {p["target"]: p["details"]["warm_start"] for p in cell["points"]}
        assert warm == {"R=2": False, "R=1": True}
        steps = {p["target"]: p["details"]["steps"] for p in cell["points"]}
        assert steps["R=1"] == round(0.4 * steps["R=2"])


class ConstantImages(Source):
    """(1, 6, 6) images whose 36 pixels all equal one value v ~ N(0.5, 0.1^2), clipped to [0, 1]
    (clipping at 5 sigma: negligible). Squared error summed over the pixels sees only the
    component along the all-ones direction, a Gaussian of variance 36 * 0.01, so
    R(D) = 1/2 log2(0.36 / D) bits, exactly that of a scalar Gaussian."""

    shape = (1, 6, 6)
    distortion = SquaredError()
    variance = 36 * 0.1**2

    def sample(self, n, seed, split="train"):
        v = np.clip(self.rng(seed, split).normal(0.5, 0.1, size=n), 0.0, 1.0)
        return np.broadcast_to(v[:, None, None, None], (n, *self.shape)).copy()

    def rate_distortion(self, distortion):
        return max(0.0, 0.5 * math.log2(self.variance / distortion))

    @property
    def d_max(self):
        return self.variance


def test_upper_bound_is_convolutional_on_images_and_holds(monkeypatch):
    built, build = [], upper_module.BetaVAE

    def spy(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(upper_module, "BetaVAE", spy)
    src = ConstantImages()
    settings = {**UPPER_SMOKE, "steps": 1000, "batch_size": 64}  # 400 steps stop ~1 bit above R(D)
    (point,) = SandwichUpper(**settings).estimate(src, Target.parse("R=2").resolve(src), seed=0)
    (model,) = built
    assert isinstance(model.encoder, ConvDown) and isinstance(model.decoder, ConvUp)
    assert not any(isinstance(m, LinearPlusMLP) for m in model.modules())
    assert model.latent_shape == (16, 2, 2) and model.prior.means.shape == (16 * 2 * 2, 8)
    details = point.details
    assert details["architecture"] == "conv" and details["latent_shape"] == [16, 2, 2]
    assert math.isfinite(point.rate_bits) and point.rate_bits >= 0
    # an upper bound (in expectation) on the exact R(D): the KL is summed over all 64 latent
    # elements and the distortion over all 36 pixels; and not a vacuous one
    exact = src.rate_distortion(point.distortion)
    assert exact - 2 * details["gap_se_bits"] <= point.rate_bits <= exact + 1.0
    assert point.distortion == pytest.approx(src.distortion_at_rate(2.0), rel=0.3)


def test_conv_vae_shapes_and_kl_sums_over_latent_elements():
    """(N, C, H, W) in, (N,) KL and (N, C, H, W) out; the KL of a realization is the sum of
    per-element terms, so it scales with the number of latent elements."""
    model = upper_module.BetaVAE((3, 5, 7), 4, 8, 2, 3)
    assert model.latent_shape == (4, 2, 2)
    x = torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    kl, y = model(x, torch.Generator().manual_seed(1))
    assert kl.shape == (6,) and y.shape == x.shape
    vector = upper_module.BetaVAE((5,), 3, 8, 2, 3)
    assert isinstance(vector.encoder, LinearPlusMLP) and vector.latent_shape == (3,)
    kl, y = vector(torch.rand(6, 5), torch.Generator().manual_seed(1))
    assert kl.shape == (6,) and y.shape == (6, 5)


class HiddenGaussian(Source):
    """An 8-d Gaussian, variances 1, 1 and six of 0.001, that does not declare its R(D): the
    high-rate slope k / D = 4 / 0.3 nats is ~4x the exact one at D = 0.3."""

    shape = (8,)
    distortion = SquaredError()
    variances = [1.0, 1.0] + [0.001] * 6

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).normal(size=(n, 8)) * np.sqrt(self.variances)


def test_lower_bound_learns_its_slope_without_exact_rd():
    exact = source("gaussian", variances=HiddenGaussian.variances)
    (point,) = SandwichLower(**LOWER_SMOKE).estimate(HiddenGaussian(), Target.parse("D=0.3"), seed=0)
    details = point.details
    assert details["slope_rule"] == LEARNED
    assert details["slope_initial_bits"] == pytest.approx(4 / 0.3 / math.log(2))
    exact_slope = abs(exact.slope(0.3))
    assert details["slope_initial_bits"] > 3.5 * exact_slope
    assert exact_slope / 2 <= details["slope_bits"] <= 2 * exact_slope
    rate = exact.rate_distortion(0.3)  # 2.77 bits; the high-rate slope gave a line at -0.9
    assert point.distortion == 0.3 and point.rate_bits == details["line_rate_bits"]
    assert rate - 1.0 <= point.rate_bits <= rate + 2 * details["intercept_se_bits"]


def test_lower_bound_clips_a_negative_line_at_zero():
    """With lambda frozen at the high-rate slope (lambda_lr ~ 0) the line is below zero at D = 0.3;
    R(D) >= 0, so the point reports 0 and keeps the line in the details."""
    settings = {**LOWER_SMOKE, "lambda_lr": 1e-12}
    (point,) = SandwichLower(**settings).estimate(HiddenGaussian(), Target.parse("D=0.3"), seed=0)
    details = point.details
    assert details["slope_bits"] == pytest.approx(details["slope_initial_bits"], rel=1e-6)
    line, se = details["line_rate_bits"], details["intercept_se_bits"]
    assert line + 2 * se < 0
    assert point.rate_bits == point.rate_lower_bits == point.rate_upper_bits == 0.0
    assert point.rate_ceiling_bits >= 0
    point.validate()


def test_upper_bound_lands_on_its_target_distortion():
    """At the exact slope the Laplace source's points landed 2.7 % and 4 % above their targets
    in the default profile (a bound only at a larger distortion); shrinking the encoder's noise
    on held-out data puts the test distortion within the leaderboard's estimator tolerance
    (1 % plus 2 standard errors), at a small cost, and what the point reports is still a bound."""
    src = source("laplace")
    for target in ("R=0.5", "R=1"):
        resolved = Target.parse(target).resolve(src)
        (point,) = SandwichUpper(steps=2500).estimate(src, resolved, seed=0)  # the default profile's
        row = {"method_kind": "estimator", "distortion": point.distortion, "target_distortion": resolved.distortion}
        assert point_status(row, point.details["distortion_stderr"]) == "ok", (target, point.distortion)
        assert point.details["noise_scale"] < 1 and 0 < point.details["noise_cost_bits"] < 0.05
        assert point.rate_bits >= src.rate_distortion(point.distortion) - 2 * point.details["gap_se_bits"]


class NumberedImages(Source):
    """(1, 2, 2) images of a finite train split of 50: image i has every pixel i / 50."""

    shape = (1, 2, 2)
    distortion = SquaredError()

    def split_size(self, split):
        return 50 if split == "train" else None

    def sample(self, n, seed, split="train"):
        if split == "train":
            order = np.concatenate([self.rng(seed, split).permutation(50) for _ in range(-(-n // 50))])[:n]
            values = order / 50
        else:
            values = self.rng(seed, split).integers(50, size=n) / 50
        return np.broadcast_to(values[:, None, None, None], (n, *self.shape)).astype(float)


def test_upper_bound_calibrates_on_images_its_training_never_saw(monkeypatch):
    """From a finite train split (50 images, far fewer than n_train + n_val), the realizations
    lambda's rescalings are measured on are held out: none is an image a training batch held
    (they were the training images themselves, drawn again)."""
    trained, evaluated = set(), []
    forward, evaluate = upper_module.BetaVAE.forward, SandwichUpper._evaluate

    def numbers(x):
        return set(np.round(x.flatten(1)[:, 0].numpy() * 50).astype(int).tolist())

    def spy_forward(model, x, generator):
        if torch.is_grad_enabled():
            trained.update(numbers(x))
        return forward(model, x, generator)

    def spy_evaluate(model, x, *args):
        evaluated.append(numbers(x))
        return evaluate(model, x, *args)

    monkeypatch.setattr(upper_module.BetaVAE, "forward", spy_forward)
    monkeypatch.setattr(SandwichUpper, "_evaluate", staticmethod(spy_evaluate))
    settings = {**UPPER_SMOKE, "steps": 50, "batch_size": 16}
    (point,) = SandwichUpper(**settings).estimate(NumberedImages(), Target.parse("D=0.05"), 0)
    calibrated = set().union(*evaluated[:-1])  # the last evaluation is the test's
    assert len(point.details["calibration"]) == len(evaluated) - 1 == 3
    assert not calibrated & trained, sorted(calibrated & trained)
    assert len(trained) + len(calibrated) == 50
