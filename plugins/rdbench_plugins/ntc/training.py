"""Training NTC on rate + lambda * distortion, and mapping a target to lambda.

Units: rate in bits per realization, distortion per realization in the source's measure,
so lambda is in bits per unit of distortion, like a slope |dR/dD| of the R-D curve.

Target -> lambda:

* ``slope=s`` targets: lambda = s, used as is.
* distortion targets (R=, D=, D/Dmax=): the initial lambda is :func:`rdbench.slopes.target_slope`
  with the validation samples: the exact slope |dR/dD| at the target distortion when the
  source has one, else the slope of the Gaussian R(D) of the samples (squared error), else
  the high-rate one. A codec whose gap to R(D) is constant (as the entropy-coded scalar
  quantizer's is at high rate) has the same slope, so that lambda lands near the target at
  high rate. At low rate a scalar-quantizing codec needs a larger lambda
  (its curve is flatter there), so training from scratch starts at START_FACTOR times it and
  ``calibration_rounds`` times multiplies lambda by (validation distortion / target), each
  time from the model trained so far. The final stretch of training (learning-rate decay)
  and the fine-tuning keep lambda fixed.
* along a curve (:meth:`.codec.NTC.fit_curve`), a warm-started fit starts at the previous
  target's final lambda times the ratio of the two targets' slopes, without START_FACTOR,
  and calibrates from there.

The learning-rate decay and the fine-tuning keep lowering the distortion after the last
lambda update, so a distortion target is met last by the quantizer gain
(:func:`calibrate_gain`): a bisection on held-out realizations, before the final density fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from rdbench.distortion import Distortion, TorchForm
from rdbench_plugins._lagrange import meet_target, recalibrated
from rdbench_plugins._optimization import Clock, calibration_checkpoints, optimize
from rdbench_plugins.ntc.model import NTCModel, Quantization

#: Learning rate of the final density fit (full batch, so it can be large).
DENSITY_LR = 3e-2
#: The gain is searched in [1 / GAIN_RANGE, GAIN_RANGE].
GAIN_RANGE = 2.0
#: Full-batch density steps fitting the density to the initial model's rounded latents.
WARMUP_DENSITY_STEPS = 200
#: The density fits use the latents of at most this many samples per channel (the first
#: training realizations that hold them): a one-dimensional histogram is as well known
#: from these as from more, and quantizing a large training set of large blocks is slow.
DENSITY_SAMPLES = 2**18
#: With calibration, training starts at this multiple of the initial lambda and calibrates
#: down: latents that collapsed to rate 0 at too small a lambda are a trap training does not
#: leave, while a model with too much rate shrinks it readily.
START_FACTOR = 2.0


def initial_step(x: torch.Tensor, measure: Distortion, target_distortion: float | None, lam: float) -> float:
    """The initial quantization step, in source units, from realizations x (N, ...).

    With a target distortion: the step at which uniform scalar quantization of the
    components of x, step * round(x / step), has that mean distortion (the smallest such
    step, found by a scan and bisection), so training starts at the target. For slope
    targets: the step whose high-rate slope is lambda (:meth:`rdbench.distortion.Distortion.quantizer_step`),
    at most the components' RMS standard deviation.
    """
    spread = float(x.reshape(x.shape[0], -1).var(dim=0, correction=0).mean().sqrt()) or 1.0
    if target_distortion is None:
        step = measure.quantizer_step(lam)
        return min(step, spread)

    def excess(step: float) -> float:
        return float(measure.torch_elementwise(x, torch.round(x / step) * step).mean()) - target_distortion

    steps = [spread * 10 ** (k / 8) for k in range(-32, 25)]
    above = next((i for i, step in enumerate(steps) if excess(step) >= 0), None)
    if above is None:
        return steps[-1]
    if above == 0:
        return steps[0]
    lo, hi = steps[above - 1], steps[above]
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if excess(mid) >= 0 else (mid, hi)
    return hi


@dataclass
class TrainingLog:
    """What training did: the lambdas it used and the validation distortions they gave."""

    lambda_initial: float
    lambda_final: float
    lambda_rule: str
    steps: int
    main_steps: int
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calibration: list[tuple[float, float]] = field(default_factory=list)  # (lambda, validation D)
    gain: float = 1.0  # the quantizer gain calibrate_gain chose (1: none)


def validation_distortion(model: NTCModel, x: torch.Tensor, distortion: TorchForm) -> float:
    """Mean distortion per realization with hard rounding of the latents."""
    model.eval()
    d = float(distortion(x, model.synthesize(model.quantize(x))).mean())
    model.train()
    return d


def train(
    model: NTCModel,
    train_x: torch.Tensor,
    val_x: torch.Tensor,
    distortion: TorchForm,
    lam: float,
    lambda_rule: str,
    target_distortion: float | None,
    *,
    steps: int,
    finetune_steps: int,
    density_steps: int,
    batch_size: int,
    lr: float,
    quantization: Quantization,
    calibration_rounds: int,
    generator: torch.Generator,
    start_factor: float = START_FACTOR,
) -> TrainingLog:
    """Adam on mean(rate_bits + lambda * distortion) over minibatches of ``train_x``.

    The density is first fitted to the initial model's latents (:func:`fit_density`).
    ``steps`` train everything with the ``quantization`` proxy (:func:`.optimize`). With a
    target distortion, training starts at ``start_factor`` times ``lam`` (bits per unit
    distortion) and recalibrates lambda ``calibration_rounds`` times, evenly over the
    constant-learning-rate part; the learning-rate decay at the end keeps lambda fixed. Then,
    with the analysis fixed, ``finetune_steps`` train the synthesis on truly rounded latents
    and :func:`fit_density` fits the density to them; before that, with a target distortion,
    :func:`calibrate_gain` sets the quantizer gain that meets it on ``val_x``.
    """
    clock = Clock()
    log = TrainingLog(lam, lam, lambda_rule, steps + finetune_steps + density_steps + WARMUP_DENSITY_STEPS, steps)
    rounds = calibration_rounds if target_distortion is not None else 0
    checkpoints = calibration_checkpoints(steps, rounds)
    lam = lam * start_factor if rounds else lam
    model.gain.fill_(1.0)
    fit_density(model, train_x, WARMUP_DENSITY_STEPS)  # rates are right from the first step
    model.train()

    def batch() -> torch.Tensor:
        return train_x[torch.randint(train_x.shape[0], (batch_size,), generator=generator, device=train_x.device)]

    def loss_at(step: int) -> torch.Tensor:
        x = batch()
        rate, x_hat = model(x, generator, quantization)
        return (rate + lam * distortion(x, x_hat)).mean()

    def calibrate(step: int) -> None:
        nonlocal lam
        if step + 1 in checkpoints:
            d_val = validation_distortion(model, val_x, distortion)
            log.calibration.append((lam, d_val))
            lam = recalibrated(lam, d_val, target_distortion)

    optimize(model.parameters(), loss_at, steps=steps, lr=lr, what="NTC", after_step=calibrate)
    optimize(
        model.synthesis.parameters(),
        lambda step: model.rounded_distortion(batch(), distortion),
        steps=finetune_steps,
        lr=lr,
        what="NTC fine-tuning",
        decay_fraction=1.0,
    )
    if target_distortion is not None:
        log.gain = calibrate_gain(model, val_x, distortion, target_distortion)
    fit_density(model, train_x, density_steps)
    log.lambda_final = lam
    log.seconds, log.cpu_seconds = clock.seconds()
    return log


@torch.no_grad()
def calibrate_gain(model: NTCModel, val_x: torch.Tensor, distortion: TorchForm, target: float) -> float:
    """Set ``model.gain`` so that the mean distortion on ``val_x`` with hard rounding is
    ``target`` (within :data:`~rdbench_plugins._lagrange.KNOB_TOLERANCE`), and return it.

    The distortion falls as the gain grows (finer cells), about as gain^-2, so log(distortion)
    is nearly linear in log(gain): :func:`~rdbench_plugins._lagrange.meet_target` on log(gain)
    in [-log GAIN_RANGE, log GAIN_RANGE] meets it in a few trials (a target outside what that
    range reaches keeps the nearest end). The analysis runs once; each trial reruns only the
    synthesis.
    """
    model.eval()
    y = torch.cat([model.analysis(model._flat_input(c)) for c in val_x.split(8192)])

    def excess(u: float) -> float:
        gain = math.exp(u)
        x_hat = model.synthesis(torch.round(y * gain) / gain).reshape(val_x.shape)
        return math.log(max(float(distortion(val_x, x_hat).mean()), 1e-300) / target)

    gain = math.exp(meet_target(excess, math.log(GAIN_RANGE), decreasing=True))
    model.gain.fill_(gain)
    model.train()
    return gain


def fit_density(model: NTCModel, train_x: torch.Tensor, steps: int, lr: float = DENSITY_LR) -> None:
    """Maximum likelihood of the density on the rounded latents of ``train_x`` (of its first
    realizations, :data:`DENSITY_SAMPLES` latents per channel): full-batch Adam on each
    channel's histogram (distinct integers and their frequencies), so that the coding tables
    match the latents the codec really codes."""
    with torch.no_grad():
        symbols = model.channels_first(model.quantize(train_x[: -(-DENSITY_SAMPLES // model.positions)]))
        symbols = symbols.to(torch.float32)
    rows = [torch.unique(row, return_counts=True) for row in symbols]
    width = max(values.numel() for values, _ in rows)
    values = torch.zeros(len(rows), width, device=symbols.device)
    weights = torch.zeros(len(rows), width, device=symbols.device)
    for c, (v, counts) in enumerate(rows):
        values[c, : v.numel()] = v
        weights[c, : v.numel()] = counts / symbols.shape[1]
    optimize(
        model.density.parameters(),
        lambda step: -(model.density.log_cell_probability(values) * weights).sum(),
        steps=steps,
        lr=lr,
        what="NTC density fit",
        decay_fraction=1.0,
    )
