"""The ``wgd`` estimator: Wasserstein gradient descent on the rate functional (Yang, Eckstein,
Nutz and Mandt, NeurIPS 2023).

Units: rates in bits per realization, distortions per realization in the source's measure;
the slope beta <= 0 is in nats per unit distortion inside, lambda = |beta| in bits outside.

The reproduction law is a discrete nu = sum_j w_j delta(y_j) of n particles y_j (flattened
realizations, pixel space for images). For a slope beta the rate functional is

    L(nu) = E_X[-log sum_j w_j exp(beta d(X, y_j))]  (nats),

the Blahut-Arimoto functional with its inner minimization over the kernel done in closed
form: Q(j | x) is proportional to w_j exp(beta d(x, y_j)) (:func:`rdbench_plugins._dual.channel_stats`,
log-sum-exp in float64 sums). Its first variation is
psi(y) = -E_X[exp(beta d(X, y)) / sum_k w_k exp(beta d(X, y_k))], and WGD moves every particle
along -grad psi: y_j <- y_j - (eta_t / |beta|) grad psi(y_j), where
grad psi(y_j) / |beta| = E_X[Q(j | X) grad_y d(X, y_j)] / w_j (by autograd through the measure's
torch form, so squared and absolute error alike). The step is taken relative to 1 / |beta|
(the width of the kernel in distortion units): under squared error eta = 1/2 moves a particle
whose mass is in balance onto the mean of the realizations it codes. eta_t follows the
paper's inverse-square-root decay over a fit's steps, eta_0 / sqrt(1 + t (f^-2 - 1) / T), down
to f eta_0 at the end. ``hybrid`` also updates the weights after every move by a
Blahut-Arimoto step, w_j <- E_X Q(j | X) (on a mini-batch: a moving average over about
n / m batches); plain WGD keeps w_j = 1/n.

Distortion targets solve beta on every batch so that the channel's distortion is the target
(the dual's safeguarded Newton, warm-started from the previous step), as NERD does; slope
targets keep beta = -lambda ln 2. Along a curve, targets run from the highest rate down, each
from the previous target's particles, weights and slope, with ``warm_steps`` steps.

Read-out on fresh ``test`` realizations (never the training ones), or exactly on a discrete
source's pmf: D = E sum_j Q(j|X) d(X, y_j) and R = E KL(Q(.|X) || w) bits, which for the
particles' nu is an upper bound on R(D) in expectation; with distortion targets beta is solved
on the read-out realizations. R can never exceed max_j log2(1 / w_j) (log2 n for plain WGD),
recorded as ``rate_ceiling_bits``. Each point keeps its particles as the artifact
``particles.npz`` (:func:`particles_bytes`).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rdbench.distortion import flatten
from rdbench.evaluation import standard_error
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.targets import Target, highest_rate_first
from rdbench.units import to_bits, to_nats
from rdbench_plugins._dual import Workspace, channel_stats, solve_beta

#: Relative tolerance of beta's Newton solve on a training batch (the read-out uses 1e-4).
TRAIN_RTOL = 1e-2
#: Particles start at random training realizations plus this fraction of the components'
#: standard deviations in Gaussian noise, so that no two coincide.
INIT_JITTER = 0.1
#: Weights of the hybrid variant are kept above this fraction of 1/n.
WEIGHT_FLOOR = 1e-9
#: Separates WGD's random streams from other uses of the cell seed.
_STREAM = 0x574744


class Batches:
    """Fresh ``train`` realizations for every step of a source without a finite train split:
    batch t is ``source.sample(batch, seed_t, "train")`` with seed_t from the cell's stream, so
    the particles never fit a fixed pool (they would: its rate is below that of fresh data)."""

    def __init__(self, source: Source, batch: int, seed: int, to_tensor: Any) -> None:
        self.source, self.batch, self.seed, self.to_tensor = source, batch, int(seed), to_tensor
        self.drawn = 0

    def _draw(self, n: int) -> torch.Tensor:
        seed = _derived_seed(self.seed, 1, self.drawn)
        self.drawn += 1
        return self.to_tensor(flatten(self.source.sample(n, seed, "train")), torch.float32)

    def initial(self, n: int) -> torch.Tensor:
        """n realizations to start the particles from."""
        return self._draw(n)

    def next(self) -> torch.Tensor:
        return self._draw(self.batch)


@dataclass
class Particles:
    """y (n, k) particle positions; log_w (n,) ln of their weights (sum 1); beta (nats) last used."""

    y: torch.Tensor
    log_w: torch.Tensor
    beta: float | None = None


@dataclass(frozen=True)
class Fit:
    """What one target's descent did: steps, the batch rates of its last two windows (bits),
    whether it converged, its mean particle displacement and its wall seconds."""

    steps: int
    rate_window_bits: tuple[float, float]
    converged: bool
    displacement: float
    seconds: float


class WGD(Estimator):
    """Wasserstein gradient descent on n particles; one point per target (module docstring).

    n_particles: n. steps: descent steps of the first target; warm_steps: of each later
    target along a curve. batch: realizations per step (m; the whole pool when it has at
    most m). n_train: the pool drawn from the ``train`` split. lr: eta_0, the step relative
    to 1/|beta|; decay: f, the last step's share of eta_0. hybrid: also update the weights by
    Blahut-Arimoto steps. window: steps per convergence window; tol_bits: the largest change of
    the mean batch rate between the last two windows of a converged fit. n_eval: read-out
    realizations (``test`` split). device: ``cpu`` or ``cuda[:i]``.
    """

    def __init__(
        self,
        n_particles: int = 512,
        steps: int = 400,
        warm_steps: int = 200,
        batch: int = 4096,
        n_train: int = 65536,
        lr: float = 0.25,
        decay: float = 0.1,
        hybrid: bool = False,
        window: int = 50,
        tol_bits: float = 0.01,
        n_eval: int = 32768,
        device: str = "cpu",
    ) -> None:
        if not isinstance(hybrid, (bool, np.bool_)):
            raise ValueError(f"hybrid must be true or false, got {hybrid!r}")
        self.n_particles, self.steps, self.warm_steps = int(n_particles), int(steps), int(warm_steps)
        self.batch, self.n_train, self.n_eval = int(batch), int(n_train), int(n_eval)
        self.lr, self.decay, self.hybrid = float(lr), float(decay), bool(hybrid)
        self.window, self.tol_bits = int(window), float(tol_bits)
        self.device = torch.device(device)

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        return self.curve(source, [target], seed)[0]

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """One point per target (in the order given), descended from the highest rate down."""
        source.distortion.require_differentiable("wgd")
        resolved = [t if t.distortion is not None or t.kind == "slope" else t.resolve(source) for t in targets]
        model = source.discrete()
        generator = torch.Generator(device="cpu").manual_seed(_derived_seed(seed, 0))
        if model is not None:  # the exact pmf, full batch, read out exactly
            x_train: torch.Tensor | Batches = self._tensor(flatten(model.alphabet), torch.float64)
            p_train = torch.as_tensor(model.pmf, dtype=torch.float64, device=self.device)
            x_eval, p_eval = x_train, p_train
        else:
            if source.split_size("train") is None:  # fresh realizations every step
                x_train = Batches(source, self.batch, seed, self._tensor)
            else:  # a finite dataset: its train split (at most n_train of it)
                x_train = self._tensor(flatten(source.sample(self.n_train, seed, "train")), torch.float32)
            x_eval = self._tensor(flatten(source.sample(self.n_eval, seed, "test")), torch.float32)
            p_train = p_eval = None
        particles = self._initial(
            x_train.initial(self.n_particles) if isinstance(x_train, Batches) else x_train, generator
        )
        points: dict[int, RDPoint] = {}
        for i in highest_rate_first(resolved):
            target = resolved[i]
            steps = self.steps if not points else self.warm_steps
            fit = self._descend(particles, x_train, p_train, source, target, steps, generator)
            points[i] = self._read_out(particles, x_eval, p_eval, source, target, fit, warm_start=len(points) > 0)
        return [[points[i]] for i in range(len(resolved))]

    # -- descent ---------------------------------------------------------------------------

    def _tensor(self, x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=self.device, dtype=dtype)

    def _initial(self, x: torch.Tensor, generator: torch.Generator) -> Particles:
        """n random training realizations (with replacement when the pool is smaller), jittered."""
        n = self.n_particles
        rows = (
            torch.randperm(len(x), generator=generator)[:n]
            if n <= len(x)
            else torch.randint(len(x), (n,), generator=generator)
        )
        spread = x.std(0, correction=0) if len(x) > 1 else torch.ones_like(x[0])
        noise = torch.randn(n, x.shape[1], generator=generator, dtype=torch.float64).to(x)
        y = x[rows.to(x.device)] + INIT_JITTER * spread * noise
        return Particles(y, torch.full((n,), -math.log(n), dtype=torch.float64, device=x.device))

    def _descend(
        self,
        particles: Particles,
        x: torch.Tensor | Batches,
        p: torch.Tensor | None,
        source: Source,
        target: Target,
        steps: int,
        generator: torch.Generator,
    ) -> Fit:
        """``steps`` WGD steps on ``particles`` (in place) at ``target``."""
        t0 = time.perf_counter()
        pairwise = source.distortion.torch_pairwise
        full = not isinstance(x, Batches) and (p is not None or len(x) <= self.batch)
        rows = None if p is None else p.to(x.dtype)
        n = len(particles.y)
        share = 1.0 if full else self.batch / (self.batch + n)  # the hybrid's moving-average weight
        start = particles.y.clone()
        workspace = Workspace()
        decay_rate = (self.decay**-2 - 1) / max(steps, 1)
        rates: list[float] = []
        beta = particles.beta
        for t in range(steps):
            if isinstance(x, Batches):
                xb = x.next()
            else:
                xb = x if full else x[torch.randint(len(x), (self.batch,), generator=generator).to(x.device)]
            y = particles.y.detach().requires_grad_(True)
            d = pairwise(xb, y)
            if target.kind == "slope":
                beta_t = torch.tensor(-to_nats(target.value), dtype=torch.float64)
                stats = channel_stats(d.detach(), beta_t, workspace, particles.log_w)
                q = stats.weights
                per_row = stats.rate(beta_t)
                rate = float(per_row.mean() if rows is None else per_row @ rows.double())
            else:
                solution = solve_beta(
                    d,
                    float(target.distortion),
                    beta,
                    rtol=TRAIN_RTOL,
                    workspace=workspace,
                    log_weights=particles.log_w,
                    row_weights=rows,
                )
                beta, q, rate = float(solution.beta), solution.weights, float(solution.rate)
            mass = q / len(xb) if rows is None else q * rows[:, None]  # joint P(x_i) Q(j | x_i)
            (mass.detach() * d).sum().backward()
            eta = self.lr / math.sqrt(1.0 + t * decay_rate)
            with torch.no_grad():
                w = particles.log_w.exp().to(y.dtype)
                # grad psi(y_j) / |beta| = (sum_i P(x_i) Q(j|x_i) grad d) / w_j, and the step is eta / |beta|
                particles.y = particles.y - eta * y.grad / w[:, None]
                if self.hybrid:
                    marginal = mass.sum(0).double()
                    new_w = (1 - share) * particles.log_w.exp() + share * marginal
                    new_w = new_w.clamp_min(WEIGHT_FLOOR / n)
                    particles.log_w = torch.log(new_w / new_w.sum())
            rates.append(to_bits(rate))
        particles.beta = beta if target.kind != "slope" else -to_nats(target.value)
        window = min(self.window, max(1, len(rates) // 2))
        last = float(np.mean(rates[-window:])) if rates else math.nan
        before = float(np.mean(rates[-2 * window : -window])) if len(rates) >= 2 * window else math.nan
        converged = bool(abs(last - before) <= self.tol_bits)
        moved = float((particles.y - start).norm(dim=1).mean())
        return Fit(steps, (before, last), converged, moved, time.perf_counter() - t0)

    # -- read-out --------------------------------------------------------------------------

    def _read_out(
        self,
        particles: Particles,
        x: torch.Tensor,
        p: torch.Tensor | None,
        source: Source,
        target: Target,
        fit: Fit,
        warm_start: bool,
    ) -> RDPoint:
        t0 = time.perf_counter()
        with torch.no_grad():
            d = source.distortion.torch_pairwise(x, particles.y.to(x.dtype))
            if target.kind == "slope":
                beta = torch.tensor(-to_nats(target.value), dtype=torch.float64)
                stats = channel_stats(d, beta, None, particles.log_w)
                per_row, dist_rows, solved = stats.rate(beta), stats.distortion, True
            else:
                solution = solve_beta(
                    d, float(target.distortion), particles.beta, log_weights=particles.log_w, row_weights=p
                )
                beta, solved = solution.beta, bool(solution.converged)
                stats = channel_stats(d, beta, None, particles.log_w)
                per_row, dist_rows = stats.rate(beta), stats.distortion
        if p is None:
            rate, distortion = float(per_row.mean()), float(dist_rows.mean())
            # With beta solved on these realizations, R's error is that of the mean of
            # KL_i - beta d_i = -lme_i (the Lagrangian per realization), not of the KL_i alone.
            spread = stats.lme if target.kind != "slope" else per_row
            stderr = standard_error(spread.cpu()) or 0.0
        else:
            rate, distortion, stderr = float(per_row @ p), float(dist_rows @ p), 0.0
        details: dict[str, Any] = {
            "form": "slope" if target.kind == "slope" else "distortion",
            "slope_bits": to_bits(-float(beta)),
            "converged": bool(fit.converged and solved),
            "steps": fit.steps,
            "train_seconds": fit.seconds,
            "readout_seconds": time.perf_counter() - t0,
            "rate_stderr_bits": to_bits(stderr),
            "rate_window_bits": list(fit.rate_window_bits),
            "displacement": fit.displacement,
            "n_particles": len(particles.y),
            "hybrid": self.hybrid,
            "n_eval": len(x) if p is None else 0,
            "readout": "test samples" if p is None else "exact pmf",
            "warm_start": warm_start,
            "device": str(self.device),
        }
        return RDPoint(
            rate_bits=max(to_bits(rate), 0.0),
            distortion=distortion,
            bound="estimate",
            rate_ceiling_bits=to_bits(float(-particles.log_w.min())),
            details=details,
            artifacts={"particles.npz": particles_bytes(particles)},
        )


def particles_bytes(particles: Particles) -> bytes:
    """The particles as an ``.npz`` file (``y``: (n, k) float64 positions, flattened
    realizations; ``w``: (n,) weights), loadable with ``numpy.load(..., allow_pickle=False)``."""
    buffer = io.BytesIO()
    np.savez(buffer, y=particles.y.detach().double().cpu().numpy(), w=particles.log_w.exp().cpu().numpy())
    return buffer.getvalue()


def _derived_seed(seed: int, *stream: int) -> int:
    """A seed in 0 .. 2^63 - 1 for one of WGD's random streams of the cell seed."""
    return int(np.random.SeedSequence([int(seed), _STREAM, *stream]).generate_state(1, np.uint64)[0] >> 1)
