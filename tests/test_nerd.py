"""The ``nerd`` estimator: the slope solve, generators, storage, accuracy and the runner."""

from __future__ import annotations

import io
import json
import math
import resource
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from rdbench import Source, SquaredError  # noqa: E402
from rdbench.cli import main  # noqa: E402
from rdbench.registry import get_registry  # noqa: E402
from rdbench.targets import Target  # noqa: E402
from rdbench_plugins._dual import channel_stats, solve_beta  # noqa: E402
from rdbench_plugins.budgets import NERD_BUDGETS, nerd_kind, resolve_nerd  # noqa: E402
from rdbench_plugins.nerd.estimator import NERD  # noqa: E402
from rdbench_plugins.nerd.generators import (  # noqa: E402
    ConvGenerator,
    FCGenerator,
    build_generator,
    conv_stages,
    generator_config,
)
from rdbench_plugins.nerd.storage import generator_bytes, load_generator  # noqa: E402
from rdbench_plugins.nerd.train import TrainSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Small budgets: each test trains in seconds on one core.
FAST = {
    "n_train": 8192,
    "pairs": 2**17,
    "m_train_max": 4096,
    "n_eval": 1024,
    "n_eval_coarse": 16384,
    "m_eval_max": 8192,
    "max_steps": 600,
    "window": 25,
    "anneal_steps": 50,
    "patience": 1,
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _gaussian(variances: list[float]) -> Source:
    return get_registry().get("source", "gaussian").create({"variances": variances})


def _dual(d: torch.Tensor, target: float, beta: torch.Tensor) -> torch.Tensor:
    """beta D* - mean_i lme_i(beta) for one problem d (n, M) and slopes beta (G,)."""
    return beta * target - channel_stats(d.expand(len(beta), *d.shape), beta).lme.mean(-1)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4, 1e12])
def test_beta_solve_matches_a_brute_force_grid(scale):
    gen = torch.Generator().manual_seed(int(math.log10(scale) + 20))
    offsets = torch.tensor([0.0, 1.0, 1e6], dtype=torch.float64)  # the last: huge distances, small spread
    d = scale * (torch.rand(3, 40, 60, generator=gen, dtype=torch.float64) ** 2 + offsets[:, None, None])
    d0, reachable = d.mean((-2, -1)), d.amin(-1).mean(-1)
    targets = reachable + torch.tensor([0.02, 0.5, 0.97], dtype=torch.float64) * (d0 - reachable)
    sol = solve_beta(d, targets, rtol=1e-10)
    assert torch.isfinite(sol.beta).all() and bool(sol.converged.all()) and bool((sol.beta < 0).all())
    assert torch.allclose(sol.distortion, targets, rtol=1e-9)
    for k in range(3):  # the dual objective at the solution beats every point of a fine grid
        spread = float(d0[k] - reachable[k])
        grid = -torch.logspace(-6, 6, 3001, dtype=torch.float64) / spread
        values = _dual(d[k], float(targets[k]), grid)
        assert torch.isfinite(values).all()
        best = values.argmax()
        solved = _dual(d[k], float(targets[k]), sol.beta[k : k + 1])[0]
        assert solved >= values[best] - 1e-9
        assert float(sol.beta[k]) == pytest.approx(float(grid[best]), rel=0.02)
        # the rate is the dual at the achieved D, which differs from D* by at most 1e-9 D*
        slack = float(-sol.beta[k] * targets[k]) * 1e-9
        assert float(sol.rate[k]) == pytest.approx(float(solved), rel=1e-9, abs=slack + 1e-12)


def test_beta_solve_edge_cases_and_warm_start():
    d = torch.rand(2, 30, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e150
    slack = solve_beta(d, d.mean((-2, -1)) * 1.1)  # the constraint is inactive: beta* = 0
    assert bool((slack.beta == 0).all()) and bool(slack.converged.all())
    unreachable = solve_beta(d, d.amin(-1).mean(-1) * 0.5)
    assert not bool(unreachable.converged.any()) and torch.isfinite(unreachable.beta).all()
    assert torch.isfinite(unreachable.weights).all()
    target = 0.5 * (d.mean((-2, -1)) + d.amin(-1).mean(-1))
    cold = solve_beta(d, target, rtol=1e-8)
    warm = solve_beta(d, target, cold.beta * 1.01, rtol=1e-8)
    assert warm.iterations < cold.iterations and torch.allclose(warm.beta, cold.beta, rtol=1e-6)
    single = solve_beta((d[0] * 1e-148).float(), float(target[0]) * 1e-148)  # float32 input, scalar target
    assert float(single.beta) == pytest.approx(float(cold.beta[0]) * 1e148, rel=1e-3)


def test_generators_follow_the_source_shape():
    fc = build_generator(generator_config((20,)))
    assert isinstance(fc, FCGenerator) and fc(torch.randn(5, 20)).shape == (5, 20)
    assert build_generator(generator_config(())).forward(torch.randn(4, 1)).shape == (4,)
    config = generator_config((3, 20, 24), channels=4)
    conv = build_generator(config)
    assert isinstance(conv, ConvGenerator) and config["latent_dim"] == 128
    y = conv(torch.randn(6, 128)).detach()
    assert y.shape == (6, 3, 20, 24) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert generator_config((1, 8, 8))["channels"] == 32 == generator_config((3, 32, 32))["channels"]
    assert (conv_stages(8, 8), conv_stages(28, 28), conv_stages(32, 32), conv_stages(64, 64)) == (2, 4, 4, 4)
    with pytest.raises(ValueError, match="shape"):
        generator_config((2, 3))


def test_generator_files_round_trip_without_unpickling(tmp_path):
    config = generator_config((7,), latent_dim=5)
    torch.manual_seed(0)
    generator = build_generator(config)
    blob = generator_bytes(generator, config, beta=-0.25)
    (tmp_path / "g.pt").write_bytes(blob)
    z = torch.randn(16, 5)
    for source in (blob, tmp_path / "g.pt", str(tmp_path / "g.pt")):
        loaded = load_generator(source, config)
        assert torch.equal(loaded(z), generator(z).detach())
    with pytest.raises(ValueError, match="differs"):
        load_generator(blob, generator_config((7,)))
    evil = io.BytesIO()
    torch.save({"format": "rdbench-nerd-generator/1", "payload": Path("x")}, evil)  # not an allowed type
    with pytest.raises(ValueError, match="not a NERD generator file"):
        load_generator(evil.getvalue())


#: Variances with components that reverse water-filling leaves inactive at 1 and 2 bits:
#: NERD's untrained start (the Gaussian N(mu, (1 - D/D_max) Sigma), which keeps every
#: component) is over 0.1 bit above R(D) there, so only a trained generator passes.
INACTIVE = [4.0, 0.5, 0.02, 0.01]


def test_nerd_learns_a_gaussian_with_inactive_components():
    source = _gaussian(INACTIVE)
    targets = [Target.parse(t).resolve(source) for t in ("R=1", "R=2")]
    c0 = _cpu_seconds()
    points = [p for (p,) in NERD(**FAST).curve(source, targets, seed=0)]
    assert _cpu_seconds() - c0 < 60
    for target, point in zip(targets, points):
        assert point.bound == "estimate" and point.rate_ceiling_bits == pytest.approx(math.log2(point.details["m"]))
        assert point.distortion == pytest.approx(target.distortion, rel=2e-3)
        assert abs(point.rate_bits - source.rate_distortion(point.distortion)) < 0.05
        assert point.details["slope_bits"] > 0


class ShiftedGaussian(Source):
    """N(mean, diag(variances)): a source whose mean is not 0."""

    shape = (2,)
    distortion = SquaredError()
    mean = np.array([3.0, -1.0])
    variances = np.array([1.0, 0.4])

    def sample(self, n: int, seed: int, split: str = "train") -> np.ndarray:
        return self.mean + np.sqrt(self.variances) * self.rng(seed, split).standard_normal((n, 2))

    @property
    def d_max(self) -> float:
        return float(self.variances.sum())


def test_curve_decreases_and_the_generator_collapses_to_the_mean_at_zero_rate():
    source = ShiftedGaussian()
    targets = [Target.parse(t).resolve(source) for t in ("D/Dmax=0.99", "D/Dmax=0.3", "D/Dmax=0.6")]
    points = [p for (p,) in NERD(**FAST).curve(source, targets, seed=1)]
    rates = [p.rate_bits for p in points]
    assert rates[1] > rates[2] > rates[0]
    assert rates[0] < 0.05 and points[0].distortion == pytest.approx(0.99 * source.d_max, rel=0.01)
    spreads = []
    for point in points:
        generator = load_generator(point.artifacts["generator.pt"], point.details["generator"])
        with torch.no_grad():
            y = generator(torch.randn(4096, 2)).double().numpy()
        assert np.allclose(y.mean(0), source.mean, atol=0.1)  # Q_Y is centred on the source mean
        spreads.append(y.var(0).sum())
    # Fig. 4: Q_Y shrinks to the mean as R -> 0 (exact total variances 0.98, 0.56 and 0.014)
    assert spreads[1] > spreads[2] > 10 * spreads[0] and spreads[0] < 0.05 * source.d_max


def test_same_seed_same_numbers_and_weights():
    source = _gaussian([1.0, 0.5, 0.2])
    target = Target.parse("R=1.5").resolve(source)
    settings = {**FAST, "max_steps": 100}
    a, b = (NERD(**settings).estimate(source, target, seed=3)[0] for _ in range(2))
    assert (a.rate_bits, a.distortion) == (b.rate_bits, b.distortion)
    assert a.artifacts["generator.pt"] == b.artifacts["generator.pt"]
    c = NERD(**settings).estimate(source, target, seed=4)[0]
    assert c.rate_bits != a.rate_bits


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_the_exact_rate():
    source = _gaussian([1.0, 0.3])
    target = Target.parse("R=1.5").resolve(source)
    point = NERD(**{**FAST, "device": "cuda"}).estimate(source, target, seed=0)[0]
    assert point.details["device"].startswith("cuda")
    assert abs(point.rate_bits - source.rate_distortion(point.distortion)) < 0.1
    load_generator(point.artifacts["generator.pt"], point.details["generator"])  # weights saved on the CPU


class RandomImages(Source):
    """Uniform random 1 x 20 x 24 images in [0, 1], squared error."""

    shape = (1, 20, 24)
    distortion = SquaredError()

    def sample(self, n: int, seed: int, split: str = "train") -> np.ndarray:
        return self.rng(seed, split).random((n, *self.shape))


def test_conv_generator_starts_as_the_gaussian_it_is_initialised_with():
    """init_affine linearizes the sigmoid about the mean image: for a small factor the output
    is mean + factor z to first order, so its mean and covariance are the ones given."""
    shape, m = (1, 3, 4), 12
    generator = build_generator(generator_config(shape, channels=4))
    mean = torch.linspace(0.2, 0.8, m)
    factor = 0.002 * torch.randn(m, m, generator=torch.Generator().manual_seed(0))
    generator.init_affine(mean, factor)
    with torch.no_grad():
        y = generator(torch.randn(200_000, 128, generator=torch.Generator().manual_seed(1))).reshape(-1, m).double()
    assert torch.allclose(y.mean(0), mean.double(), atol=2e-4)
    expected = (factor @ factor.T).double()
    assert torch.allclose(torch.cov(y.T), expected, atol=0.03 * float(expected.diagonal().max()))


@pytest.mark.parametrize("shape, dense_layers", [((1, 8, 8), 2), ((3, 32, 32), 1), ((1, 28, 28), 1)])
def test_the_sampling_form_of_the_conv_generator_is_the_same_function(shape, dense_layers):
    """for_sampling turns the small-map transposed convolutions into dense layers (both at 8 x 8,
    the first at 32 x 32 with c_d = 32) and the last one, to the image's channels, into its
    polyphase form where a convolution is left, without changing the function: same outputs
    for random weights, to float32 rounding."""
    generator = build_generator(generator_config(shape))
    with torch.no_grad():
        for p in generator.parameters():
            p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
        fast = generator.for_sampling()
        assert sum(isinstance(layer, torch.nn.Linear) for layer in fast.head) == 1 + dense_layers  # the projection
        assert [type(layer).__name__ for layer in fast.tail][-1:] == ([] if shape[1] == 8 else ["PolyphaseTranspose"])
        z = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(fast(z), generator(z), atol=1e-5)


@pytest.mark.parametrize("channels_out, size", [(1, 16), (3, 7), (2, 1)])
def test_the_polyphase_form_of_a_transposed_convolution_is_the_same_function(channels_out, size):
    """PolyphaseTranspose (a 3 x 3 convolution to four phases and a pixel shuffle) computes the
    kernel-4, stride-2 transposed convolution it replaces, on maps of any size."""
    from rdbench_plugins.nerd.generators import PolyphaseTranspose

    conv = torch.nn.ConvTranspose2d(5, channels_out, 4, 2, 1)
    y = torch.randn(6, 5, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(PolyphaseTranspose(conv)(y), conv(y), atol=1e-5)
    with pytest.raises(ValueError, match="kernel 4, stride 2"):
        PolyphaseTranspose(torch.nn.ConvTranspose2d(5, 1, 3, 2, 1))


def test_image_sources_get_the_convolutional_generator():
    settings = {
        **FAST,
        "channels": 4,
        "n_train": 512,
        "pairs": 2**14,
        "m_train_max": 1024,
        "max_steps": 40,
        "n_eval": 64,
        "n_eval_coarse": 256,
        "m_eval_max": 1024,
    }
    point = NERD(**settings).estimate(RandomImages(), Target.parse("D=30").resolve(RandomImages()), seed=0)[0]
    assert point.details["generator"]["kind"] == "conv" and point.details["generator"]["channels"] == 4
    assert point.rate_bits >= 0 and point.distortion > 0 and point.rate_ceiling_bits == 10
    generator = load_generator(point.artifacts["generator.pt"])
    assert generator(torch.randn(3, 128)).shape == (3, 1, 20, 24)


def test_slope_targets_use_the_lagrangian_form():
    source = _gaussian(INACTIVE)
    # slope 1 bit per unit distortion: water level log2(e) / 2, only the first component active,
    # so the tangent point is D = log2(e) / 2 + 0.5 + 0.02 + 0.01 (the untrained start lands
    # several per cent above it, and over 0.1 bit above R(D))
    point = NERD(**FAST).estimate(source, Target.parse("slope=1"), seed=0)[0]
    assert point.details["form"] == "slope" and point.details["slope_bits"] == pytest.approx(1.0)
    assert point.distortion == pytest.approx(math.log2(math.e) / 2 + 0.53, rel=0.02)
    assert abs(point.rate_bits - source.rate_distortion(point.distortion)) < 0.05


def test_distortions_that_are_not_differentiable_are_refused():
    source = get_registry().get("source", "bernoulli").create({})
    with pytest.raises(ValueError, match="differentiable"):
        NERD(**FAST).estimate(source, Target.parse("R=0.3").resolve(source), seed=0)
    record = get_registry().get("estimator", "nerd").record
    for bad in ({"max_steps": 0}, {"lr": 0.0}, {"n_train": 1.5}, {"lr_drops": -1}):
        with pytest.raises(ValueError, match=f"nerd.{next(iter(bad))}="):
            record.check_settings(bad)


def test_rdbench_run_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--sources",
            "gaussian-m20",
            "--estimators",
            "nerd",
            "--codecs",
            "none",
            "--profile",
            "smoke",
            "--executor",
            "serial",
            "--no-progress",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "leaderboard.parquet")
    rows = table[table["method"] == "nerd"]
    assert len(rows) == 2 and (rows["bound"] == "estimate").all()
    assert rows["cell_id"].nunique() == 1  # one curve cell holds both targets, warm-started
    assert list(rows["target"]) == ["R=1", "R=2"]
    # the smoke budget stops training before NERD's convergence test passes: flagged, not silently ok
    converged = [json.loads(d)["converged"] for d in rows["details"]]
    assert list(rows["converged"]) == converged
    assert list(rows["status"]) == ["ok" if c else "not_converged" for c in converged]
    assert rows["rate_ceiling_bits"].notna().all() and rows["near_ceiling"].notna().all()
    assert (rows["rate_gap_bits"].abs() < 1.0).all()  # the smoke budget is small, not absurd
    stored = sorted(p.name for p in (out / "artifacts").rglob("*generator.pt"))
    assert len(stored) == 2


@pytest.mark.parametrize("kind", sorted(NERD_BUDGETS))
def test_budget_can_reach_its_plateaus_within_max_steps(kind):
    # "converged" needs lr_drops + 1 plateaus of patience windows after the anneal; a budget
    # whose max_steps ends training before that can never report a converged point (the
    # images' old 600 steps against 150 + 5 x 2 x 50 = 650).
    budget, settings = NERD_BUDGETS[kind], TrainSettings()
    fewest = settings.anneal_steps + (budget["lr_drops"] + 1) * settings.patience * budget["window"]
    assert fewest <= budget["max_steps"], (kind, fewest)


def test_budget_kind_follows_the_image_size():
    assert nerd_kind((20,)) == "fc" and nerd_kind((1, 8, 8)) == "conv" and nerd_kind((1, 28, 28)) == "conv-large"
    settings = resolve_nerd({"channels": None, "window": None, "lr_drops": 5}, SimpleNamespace(shape=(1, 28, 28)))
    assert settings == {"channels": 16, "window": 25, "lr_drops": 5}  # set values are kept
    # an FC step's cost is its B x M distances, a conv step's the generator's M draws
    assert resolve_nerd({"pairs": None}, SimpleNamespace(shape=(20,))) == {"pairs": 2**18}
    assert resolve_nerd({"pairs": None}, SimpleNamespace(shape=(1, 8, 8))) == {"pairs": 2**20}


def test_a_target_the_batches_cannot_reach_keeps_the_learning_rate_and_is_not_converged():
    # Below the nearest-neighbour distortion of M generator samples the validation rate sits at
    # log2 M whatever the generator does: a flat objective that says nothing of a plateau. The
    # old schedule read it as plateaus, cut the learning rate before a cold image generator
    # reached D* (a worse estimate on digits) and could even report a point "converged" that
    # never reached its target.
    from rdbench_plugins.nerd.train import Trainer

    torch.manual_seed(0)
    pool = torch.randn(4096, 16)
    config = generator_config((16,))
    generator = build_generator(config)
    settings = TrainSettings(pairs=2**14, m_min=256, m_max=256, window=10, anneal_steps=10, max_steps=120)
    rng = torch.Generator().manual_seed(0)
    trainer = Trainer(generator, config["latent_dim"], pool, SquaredError().torch_pairwise, settings, rng)
    result = trainer.run(distortion=1e-3, rate_guess_bits=20.0)
    assert result.rate_bits == pytest.approx(8.0, abs=1e-6)  # log2 M: the target is out of reach
    assert result.lr == settings.lr and not result.converged


def test_an_unreachable_batch_is_solved_once_for_the_aim_just_above_its_nearest_neighbours(monkeypatch):
    # D(beta) >= mean_i min_j d_ij for every beta, so a D* below that cannot be met: the slope
    # is solved only for the aim UNREACHABLE_AIM of the way from there to D(0), exactly as
    # solving for that aim directly gives it.
    from rdbench_plugins.nerd import train as nerd_train

    d = torch.rand(64, 256, generator=torch.Generator().manual_seed(3)) * 5
    nearest, d0 = float(d.amin(-1).mean()), float(d.mean())
    aim = nearest + nerd_train.UNREACHABLE_AIM * (d0 - nearest)
    direct = solve_beta(d, aim, rtol=1e-4)
    calls = []
    monkeypatch.setattr(nerd_train, "solve_beta", lambda *a, **k: calls.append(a[1]) or solve_beta(*a, **k))
    trainer = nerd_train.Trainer(None, 1, d, SquaredError().torch_pairwise, TrainSettings(), torch.Generator())
    beta, weights = trainer._slope(d, 0.5 * nearest, torch.tensor(-1.0, dtype=torch.float64))
    assert calls == [aim] and torch.equal(beta, direct.beta) and torch.equal(weights, direct.weights)
    calls.clear()
    reachable = 0.5 * (nearest + d0)  # reachable: one solve, for D* itself
    beta, _ = trainer._slope(d, reachable, None)
    assert calls == [reachable] and float(solve_beta(d, reachable).distortion) == pytest.approx(reachable, rel=1e-4)
