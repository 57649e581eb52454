"""The sandwich upper bound: a beta-VAE (Yang & Mandt 2022, Sec. 3.1).

Encoder q(z|x) = N(mu(x), diag sigma(x)^2), a learned prior p(z) factorized over the latent
elements with a K-component Gaussian mixture per element, and a decoder y = g(z). Vector
sources use MLPs on the flattened realization; image sources (shape (C, H, W)) use
convolutions: z is a (latent, ceil(H/4), ceil(W/4)) map per image (:class:`BetaVAE`). For any
such model, I(X; Y) <= I(X; Z) <= E_X KL(q(z|X) || p(z)) =: R, with D = E d(X, g(Z)); so
(D, R) is achievable and R upper-bounds R(D). Training minimizes R + lambda D in bits per
realization (nats internally, divided by ln 2), with the KL estimated from one sample
z ~ q(z|x): KL = -H[q(.|x)] - log p(z), the entropy of q in closed form, summed over all
latent elements of the realization (bits per realization). The reported point is
(D, R) estimated the same way on ``n_test`` held-out test realizations, with standard errors.
The interval is R +- 2 SE of R + lambda D (``gap_se_bits``): the delta-method standard error
of R - R(D) at the estimated D, since the estimate of D is as noisy as that of R and a
distortion error moves R(D) by lambda times it.

Target -> lambda (:mod:`rdbench.slopes`, with the validation samples): a slope target is used
as is; a distortion target uses the exact R(D) slope when the source has one, otherwise the
samples' Gaussian R(D) slope (squared error) or the high-rate slope, and
``calibration_rounds`` rescalings lambda <- lambda (D_val / D_target)^e (e by realization kind,
:data:`CALIBRATION_EXPONENT`), evenly over the constant-learning-rate part of training, on
validation realizations the training never sees. A model that still lands above its target
on them, by at most NOISE_REACH, has its encoder's noise shrunk until it meets the target
(:func:`calibrate_noise`); one below its target is kept, its point bounding R(D) at the
target as well. The cell reports the distortion reached on the test data.

Along a curve (:meth:`SandwichUpper.curve`, one cell for all of a source's targets) the
targets are fitted from the steepest slope (highest rate) down: the first as above, each later
one from a copy of the previous target's model, with ``warm_fraction`` of the steps and, where
lambda is calibrated, starting from the previous target's final lambda times the ratio of the
two slopes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rdbench.distortion import TorchForm
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.slopes import EXACT, TARGET, Slope, target_slope
from rdbench.targets import Target
from rdbench.units import to_bits
from rdbench_plugins._conv import ConvDown, ConvUp, latent_size
from rdbench_plugins._holdout import held_out
from rdbench_plugins._lagrange import WARM_RULE, meet_target, recalibrated, warm_lambda
from rdbench_plugins._networks import LinearPlusMLP, seeded
from rdbench_plugins._optimization import calibration_checkpoints, optimize
from rdbench_plugins._precision import use_train_dtype
from rdbench_plugins.sandwich.common import MeanSE, along_curve, samples, timed

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: Realizations per evaluation batch.
_EVAL_BATCH = 8192
#: Default latent channels per image channel (images).
_IMAGE_LATENT = 16
#: lambda's rescalings are lambda (D_val / D_target)^exponent, by realization kind: between two
#: of them a conv model on images moves about half the way to where D ~ 1/lambda puts it (its
#: cell's ``calibration`` lists lambda and D_val at each), an MLP on vectors all of it.
CALIBRATION_EXPONENT = {"vector": 1.0, "image": 2.0}
#: A final shrink of q(z|x)'s noise (:func:`calibrate_noise`) is searched in [1 / NOISE_RANGE, 1];
#: it corrects a model whose validation distortion exceeds its target by at most NOISE_REACH
#: (relative): a local move along the point's tangent, not a substitute for training.
NOISE_RANGE, NOISE_REACH = 2.0, 0.05
#: Default MLP width (vectors) and conv channels (images): few conv channels keep a
#: default-profile image cell affordable on one CPU thread.
_VECTOR_HIDDEN, _IMAGE_HIDDEN = 128, 32


class MixturePrior(nn.Module):
    """p(z) = prod_l sum_c pi_lc N(z_l; m_lc, s_lc^2): one K-component Gaussian mixture for each
    of the ``latent`` elements of a realization's latent (for images every channel and
    position has its own)."""

    def __init__(self, latent: int, components: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(latent, components))
        self.means = nn.Parameter(torch.linspace(-1.0, 1.0, components).repeat(latent, 1))
        self.log_scales = nn.Parameter(torch.zeros(latent, components))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) in nats, summed over the elements: (N, latent) -> (N,)."""
        scaled = (z[..., None] - self.means) * torch.exp(-self.log_scales)
        log_normal = -0.5 * scaled.square() - self.log_scales - _HALF_LOG_2PI
        return torch.logsumexp(log_normal + torch.log_softmax(self.logits, -1), -1).sum(-1)


class BetaVAE(nn.Module):
    """x (N, *shape) -> (KL estimate in nats per realization (N,), reproduction y (N, *shape)).

    Vector sources (any shape but (C, H, W); x flattened to (N, dims)): MLP encoder and decoder
    (:class:`~rdbench_plugins._networks.LinearPlusMLP`, width ``hidden``, ``layers`` hidden
    layers), latent_shape (latent,). Image sources (shape (C, H, W)): the shared convolutional
    stacks of :mod:`rdbench_plugins._conv` with ``hidden`` channels (``layers`` unused): the
    encoder :class:`~rdbench_plugins._conv.ConvDown` maps an image to a (2 latent, h, w) map,
    h, w = ceil(H/4), ceil(W/4), split into the mean and the log standard deviation maps, and
    the decoder :class:`~rdbench_plugins._conv.ConvUp` maps z (latent, h, w) back to (C, H, W);
    latent_shape (latent, h, w). Either way the prior has a mixture for each of the
    prod(latent_shape) latent elements, and the KL is summed over all of them.
    """

    def __init__(self, shape: tuple[int, ...], latent: int, hidden: int, layers: int, components: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.image = len(self.shape) == 3
        if self.image:
            c, h, w = self.shape
            self.encoder: nn.Module = ConvDown(c, hidden, 2 * latent)
            self.decoder: nn.Module = ConvUp(latent, hidden, c, (h, w))
            self.latent_shape: tuple[int, ...] = (latent, *latent_size((h, w)))
        else:
            dims = math.prod(self.shape)
            self.encoder = LinearPlusMLP(dims, 2 * latent, hidden, layers)
            self.decoder = LinearPlusMLP(latent, dims, hidden, layers)
            self.latent_shape = (latent,)
        self.prior = MixturePrior(math.prod(self.latent_shape), components)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x)'s mean and log standard deviation, (N, *latent_shape) each."""
        stats = self.encoder(x if self.image else x.reshape(x.shape[0], -1))
        mean, log_std = stats.chunk(2, dim=1)
        return mean, log_std

    @torch.no_grad()
    def scale_noise(self, factor: float) -> None:
        """Multiply every standard deviation of q(z|x) by ``factor`` (through the bias of the
        encoder's log-std outputs): another Gaussian encoder, so (D, R) stays achievable."""
        bias = self.encoder[-1].bias if self.image else self.encoder.linear.bias
        bias[bias.shape[0] // 2 :] += math.log(factor)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(log_std) * noise
        entropy = (log_std + 0.5 + _HALF_LOG_2PI).flatten(1).sum(-1)  # H[N(mean, diag exp(2 log_std))]
        return -entropy - self.prior.log_prob(z.flatten(1)), self.decoder(z).reshape(x.shape)


class SandwichUpper(Estimator):
    """beta-VAE upper bound on R(D); bits per realization, distortion per realization.

    Settings: steps, batch_size, lr (Adam), n_train (train-split realizations), n_val
    (train-split realizations held out for the calibrations, see
    :func:`~rdbench_plugins._holdout.held_out`; as many as n_test by default, so that the
    final calibration's sampling error is no larger than the test's), n_test (test-split
    realizations the point is evaluated on), latent (vectors: latent dimensions, None: the
    source's dims; images: latent channels, None: 16 per image channel, so that there are at
    least as many latent elements as pixels), hidden (vectors: MLP width, None: 128; images:
    conv channels, None: 32), layers (MLP depth; unused for images), components (mixture
    components per latent element), calibration_rounds (see the module docstring),
    warm_fraction (the share of ``steps`` a warm-started fit along a curve trains), train_dtype
    (``float32``, or ``bfloat16`` for the conv layers of a training step, see
    :mod:`rdbench_plugins._precision`; None: by image size, see
    :data:`~rdbench_plugins.budgets.TRAIN_DTYPES`), device (torch device).
    Architectures: :class:`BetaVAE`.
    """

    def __init__(
        self,
        steps: int = 5000,
        batch_size: int = 128,
        lr: float = 2e-3,
        n_train: int = 50_000,
        n_val: int = 20_000,
        n_test: int = 20_000,
        latent: int | None = None,
        hidden: int | None = None,
        layers: int = 2,
        components: int = 8,
        calibration_rounds: int = 3,
        warm_fraction: float = 0.4,
        train_dtype: str | None = None,
        device: str = "cpu",
    ) -> None:
        self.warm_fraction = float(warm_fraction)
        self.train_dtype = train_dtype
        self.steps, self.batch_size, self.lr = int(steps), int(batch_size), float(lr)
        self.n_train, self.n_val, self.n_test = int(n_train), int(n_val), int(n_test)
        self.latent = None if latent is None else int(latent)
        self.hidden = None if hidden is None else int(hidden)
        self.layers, self.components = int(layers), int(components)
        self.calibration_rounds = int(calibration_rounds)
        self.device = torch.device(device)

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        return self.curve(source, [target], seed)[0]

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """One point per target (in the order given), fitted from the steepest slope down,
        each after the first warm-started from the previous model (see the module docstring)."""
        resolved = [t.resolve(source) for t in targets]
        train_x, val_x = (
            torch.as_tensor(part.reshape(len(part), *source.shape), dtype=torch.float32, device=self.device)
            for part in held_out(source, self.n_train, self.n_val, seed)
        )
        test_x = samples(source, self.n_test, seed, "test", self.device, torch.float32, flatten=False)
        slopes = [target_slope(source, t, val_x.cpu().numpy()) for t in resolved]

        def fit(i: int, previous: tuple[BetaVAE, Slope, float] | None):
            point, model, lam = self._fit(source, resolved[i], slopes[i], seed, train_x, val_x, test_x, previous)
            return point, (model, slopes[i], lam)

        return along_curve(slopes, fit)

    def _fit(
        self,
        source: Source,
        target: Target,
        slope: Slope,
        seed: int,
        train_x: torch.Tensor,
        val_x: torch.Tensor,
        test_x: torch.Tensor,
        previous: tuple[BetaVAE, Slope, float] | None,
    ) -> tuple[RDPoint, BetaVAE, float]:
        """(the point, the trained model, its final lambda in bits per unit distortion)."""
        source.distortion.require_differentiable("sandwich-upper")
        distortion = source.distortion.torch_elementwise
        shape = tuple(source.shape)
        image = len(shape) == 3
        latent = self.latent or (_IMAGE_LATENT * shape[0] if image else math.prod(shape))
        hidden = self.hidden or (_IMAGE_HIDDEN if image else _VECTOR_HIDDEN)
        rounds = self.calibration_rounds if slope.rule not in (TARGET, EXACT) else 0
        lam = slope.bits  # bits per unit distortion; rates in the loss are in bits
        if previous is None:
            model = seeded(seed, lambda: BetaVAE(shape, latent, hidden, self.layers, self.components)).to(self.device)
            use_train_dtype(model, self.train_dtype, shape)
            steps = self.steps
        else:
            model, steps = copy.deepcopy(previous[0]), max(1, round(self.warm_fraction * self.steps))
            if rounds:
                lam = warm_lambda(previous[2], previous[1].bits, slope.bits)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        lam_initial = lam
        calibration: list[list[float]] = []
        checkpoints = calibration_checkpoints(steps, rounds)
        exponent = CALIBRATION_EXPONENT["image" if image else "vector"]

        def loss_at(step: int) -> torch.Tensor:
            x = train_x[torch.randint(len(train_x), (self.batch_size,), generator=generator, device=self.device)]
            rate, y = model(x, generator)
            return (to_bits(rate) + lam * distortion(x, y)).mean()

        def calibrate(step: int) -> None:
            nonlocal lam
            if step + 1 in checkpoints:
                d_val = self._evaluate(model, val_x, distortion, generator, lam)[1].mean
                calibration.append([lam, d_val])
                lam = recalibrated(lam, d_val, float(target.distortion), exponent)

        timings: dict[str, float] = {}
        with timed(timings, "train"):
            optimize(model.parameters(), loss_at, steps=steps, lr=self.lr, what="sandwich-upper", after_step=calibrate)
            noise_scale, noise_cost = (
                calibrate_noise(model, val_x, distortion, float(target.distortion), lam, generator)
                if target.distortion is not None
                else (None, None)
            )
        with timed(timings, "eval"):
            rate, dist, gap = self._evaluate(model, test_x, distortion, generator, lam)
        details: dict[str, Any] = {
            "slope_bits": lam,
            "slope_initial_bits": lam_initial,
            "slope_rule": slope.rule if previous is None or not rounds else f"{WARM_RULE} ({slope.rule})",
            "warm_start": previous is not None,
            "calibration": calibration,
            "noise_scale": noise_scale,
            "noise_cost_bits": noise_cost,
            "target_distortion": target.distortion,
            "rate_stderr_bits": rate.se,
            "distortion_stderr": dist.se,
            "gap_se_bits": gap.se,
            "n_test": rate.n,
            "latent": latent,
            "hidden": hidden,
            "latent_shape": list(model.latent_shape),
            "architecture": "conv" if model.image else "mlp",
            "steps": steps,
            **timings,
        }
        point = RDPoint(
            rate_bits=max(rate.mean, 0.0),
            distortion=dist.mean,
            bound="upper",
            rate_lower_bits=max(rate.mean - 2 * gap.se, 0.0),
            rate_upper_bits=max(rate.mean + 2 * gap.se, 0.0),
            details=details,
        )
        return point, model, lam

    @staticmethod
    @torch.no_grad()
    def _evaluate(
        model: BetaVAE, x: torch.Tensor, distortion: TorchForm, generator: torch.Generator, lam: float
    ) -> tuple[MeanSE, MeanSE, MeanSE]:
        """Rate r in bits (the KL summed over all latent elements), distortion d, and r + lam d
        (lam in bits per unit distortion), per realization of x (n, *shape): their means and
        standard errors."""
        rates, dists = [], []
        for chunk in x.split(_EVAL_BATCH):
            rate, y = model(chunk, generator)
            rates.append(to_bits(rate.double()))
            dists.append(distortion(chunk, y).double())
        r, d = torch.cat(rates), torch.cat(dists)
        return (
            MeanSE.of(r, "sandwich-upper: the rate"),
            MeanSE.of(d, "sandwich-upper: the distortion"),
            MeanSE.of(r + lam * d, "sandwich-upper: rate + lambda distortion"),
        )


@torch.no_grad()
def calibrate_noise(
    model: BetaVAE, val_x: torch.Tensor, distortion: TorchForm, target: float, lam: float, generator: torch.Generator
) -> tuple[float, float]:
    """Where the model's distortion on ``val_x`` exceeds ``target``, shrink q(z|x)'s standard
    deviations by the factor s in [1 / NOISE_RANGE, 1] that meets it
    (:func:`~rdbench_plugins._lagrange.meet_target`; D grows with s). Returns (s, the growth
    of R + lambda D in bits that s costs on ``val_x``); s = 1: kept.

    A point above its target bounds R(D) only at its own, larger distortion; the shrunk
    encoder is another Gaussian encoder, so the point stays achievable. Training leaves
    R + lambda D (``lam`` in bits per unit distortion) stationary in log s, so a small shrink
    moves the point along its tangent; a large one costs more (the learned prior fits the
    trained noise), so a model more than NOISE_REACH above its target is kept (and flagged
    off target by the leaderboard). Below the target the model is kept: its point bounds
    R(D) at the target as well, R(D) being non-increasing. One noise draw serves every trial,
    so D(s) is smooth.
    """
    mean, log_std = (torch.cat(parts) for parts in zip(*(model.encode(c) for c in val_x.split(_EVAL_BATCH))))
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)

    def point(u: float) -> tuple[float, float]:
        """(R in bits, D) on val_x with the standard deviations times e^u."""
        z = mean + torch.exp(log_std + u) * noise
        entropy = (log_std + u + 0.5 + _HALF_LOG_2PI).flatten(1).sum(-1)
        rate = -entropy - torch.cat([model.prior.log_prob(c.flatten(1)) for c in z.split(_EVAL_BATCH)])
        d = torch.cat(
            [
                distortion(x, model.decoder(c).reshape(x.shape))
                for x, c in zip(val_x.split(_EVAL_BATCH), z.split(_EVAL_BATCH))
            ]
        )
        return to_bits(float(rate.mean())), float(d.mean())

    rate, d = point(0.0)
    if not target < d <= (1 + NOISE_REACH) * target:
        return 1.0, 0.0
    u = meet_target(lambda u: math.log(max(point(u)[1], 1e-300) / target), math.log(NOISE_RANGE), decreasing=False)
    shrunk_rate, shrunk_d = point(u)
    model.scale_noise(math.exp(u))
    return math.exp(u), shrunk_rate + lam * shrunk_d - (rate + lam * d)
