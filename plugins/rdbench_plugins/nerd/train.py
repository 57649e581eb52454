"""Training the generator: Algorithm 1 of the paper, with a schedule that stops by itself.

Each step draws B source samples from the training pool and M generator samples, solves
the slope beta (distortion-constrained form: D(beta) = D*, warm-started from the previous
step; Lagrangian form: beta fixed) and takes an Adam step on -mean_i lme_i(beta), whose
gradient with respect to d_ij is -beta w_ij / B (the envelope theorem: beta is held fixed).

Batch shape: the rate estimate of a batch needs M >> 2^R reproductions (Sec. III-A), so
M = 2^ceil(R + ``m_margin_bits``) within [m_min, m_max], re-chosen from the current rate
estimate every window, and B = pairs / M source samples (at least ``batch_min``), which
keeps the cost of a step (B x M distances) constant.

Schedule: every ``window`` steps the objective is measured on a fixed validation batch (the
same x and z each time, so the change between two measurements is the change of the
generator, not sampling noise). When it has improved by less than ``tol_bits`` since the
best measurement, the learning rate is multiplied by ``lr_factor``; at the plateau after
``lr_drops`` such drops training stops (``converged``), or at ``max_steps`` at the latest.
A measurement whose batch cannot reach D* does not count: its rate sits at log2 M whatever
the generator does (early on images, before the generator reaches D*), so it says nothing of
a plateau and the learning rate is kept.
All rates here are in nats unless the name says bits; beta is in nats per unit distortion.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rdbench.units import to_bits
from rdbench_plugins._dual import BetaSolution, Pairwise, Workspace, channel_stats, solve_beta
from rdbench_plugins._optimization import adam

#: Where a batch that cannot reach D* aims: this fraction of the way from its nearest-neighbour
#: distortion to its uniform channel's.
UNREACHABLE_AIM = 0.05


def _reaches(solution: BetaSolution, d: torch.Tensor, distortion: float) -> bool:
    """Whether the batch of distances d (B, M) reaches D* = ``distortion``: its slope solve
    converged, or D* is at least the batch's nearest-neighbour distortion."""
    return bool(solution.converged) or distortion >= float(d.amin(-1).mean())


@dataclass(frozen=True)
class TrainSettings:
    """Budget and schedule of one training run (see the module docstring)."""

    lr: float = 3e-3
    lr_factor: float = 0.5
    lr_drops: int = 4
    patience: int = 2
    window: int = 50
    anneal_steps: int = 150
    average_decay: float = 0.98
    tol_bits: float = 0.003
    max_steps: int = 4000
    pairs: int = 2**20
    m_min: int = 1024
    m_max: int = 16384
    m_margin_bits: float = 6.0
    batch_min: int = 64
    beta_rtol: float = 1e-4

    def batch_shape(self, rate_bits: float) -> tuple[int, int]:
        """(B, M) for a rate estimate in bits."""
        m = 2 ** math.ceil(max(rate_bits, 0.0) + self.m_margin_bits)
        m = int(min(max(m, self.m_min), self.m_max))
        return max(self.batch_min, self.pairs // m), m


@dataclass(frozen=True)
class TrainResult:
    """beta: mean slope over the last window (nats per unit distortion, <= 0).
    rate_bits: the objective's rate on the last validation batch (a finite-M estimate).
    steps, seconds, lr (the final learning rate), batch (B, M) at the end.
    converged: stopped on a plateau rather than at max_steps.
    """

    beta: float
    rate_bits: float
    steps: int
    seconds: float
    lr: float
    batch: tuple[int, int]
    converged: bool


class Trainer:
    """Trains ``generator`` on ``pool`` (n, k), flattened source samples on the training device.

    distortion: D* for the constrained form, or None with ``beta`` fixed (Lagrangian form).
    rng: the CPU generator that draws every batch (determinism does not depend on the device).
    """

    def __init__(
        self,
        generator: nn.Module,
        latent_dim: int,
        pool: torch.Tensor,
        pairwise: Pairwise,
        settings: TrainSettings,
        rng: torch.Generator,
    ) -> None:
        self.generator = generator
        self.latent_dim = latent_dim
        self.pool = pool
        self.pairwise = pairwise
        self.settings = settings
        self.rng = rng
        self.workspace = Workspace()

    def _batch(self, b: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (b, k), z (m, latent_dim)), both on the pool's device."""
        index = torch.randint(len(self.pool), (b,), generator=self.rng)
        z = torch.randn(m, self.latent_dim, generator=self.rng)
        return self.pool[index.to(self.pool.device)], z.to(self.pool.device)

    def _distances(self, x: torch.Tensor, z: torch.Tensor, generator: nn.Module | None = None) -> torch.Tensor:
        y = (generator or self.generator)(z)
        return self.pairwise(x, y.reshape(len(y), -1))

    def _slope(
        self, d: torch.Tensor, distortion: float | None, beta: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(beta, weights) for a batch: solved for ``distortion`` (warm start ``beta``), or at ``beta``."""
        if distortion is None:
            assert beta is not None
            return beta, channel_stats(d, beta, self.workspace).weights
        rtol, nearest = self.settings.beta_rtol, float(d.amin(-1).mean())
        sol = None
        if distortion * (1 + 2 * rtol) >= nearest:  # else D(beta) >= nearest misses D* whatever beta
            sol = solve_beta(d, distortion, beta, rtol=rtol, workspace=self.workspace)
        if sol is None or not _reaches(sol, d, distortion):
            # below what this batch can reach: aim just above the nearest-neighbour channel, whose
            # gradient pulls each reproduction toward the samples it is nearest to. (Aiming
            # halfway to the uniform channel, above D_max on images, shrank Q_Y toward the mean.)
            reachable = nearest + UNREACHABLE_AIM * (float(d.mean()) - nearest)
            sol = solve_beta(d, reachable, rtol=rtol, workspace=self.workspace)
        return sol.beta, sol.weights

    @torch.no_grad()
    def _validate(
        self, generator: nn.Module, x: torch.Tensor, z: torch.Tensor, distortion: float | None, beta: torch.Tensor
    ) -> tuple[float, float, bool]:
        """(objective, rate, measured) on a fixed batch, in bits: the rate at D*, or -mean lme at
        the fixed beta. measured: False when the batch cannot reach D* (the rate is then log2 M)."""
        d = self._distances(x, z, generator)
        if distortion is None:
            stats = channel_stats(d, beta, self.workspace)
            return to_bits(float(-stats.lme.mean())), to_bits(float(stats.rate(beta).mean())), True
        sol = solve_beta(d, distortion, beta, rtol=self.settings.beta_rtol, workspace=self.workspace)
        rate = to_bits(float(sol.rate))
        return rate, rate, _reaches(sol, d, distortion)

    def run(
        self,
        distortion: float | None = None,
        beta: float | None = None,
        start: float | None = None,
        beta0: float | None = None,
        rate_guess_bits: float = 0.0,
    ) -> TrainResult:
        """Train for D* = ``distortion`` (constrained form) or at the slope ``beta`` (Lagrangian form).

        The goal is reached by continuation over ``anneal_steps``: the target moves linearly
        from ``start`` (a distortion, default the first batch's D(0), the uniform channel's;
        or a slope, default 0) to the goal, so the generator follows the curve from where it
        is instead of facing a sharp channel at once. beta0: the warm start of the first slope
        solve (constrained form). rate_guess_bits: the rate expected (sizes the batches).
        """
        if (distortion is None) == (beta is None):
            raise ValueError("nerd: training needs either a distortion target or a fixed beta")
        s = self.settings
        t0 = time.perf_counter()
        optimizer = adam(self.generator.parameters(), s.lr)
        average = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(s.average_decay))
        lr, drops, stale, best, steps = s.lr, 0, 0, math.inf, 0
        goal = float(distortion if beta is None else beta)
        begin = 0.0 if start is None and beta is not None else start
        beta_t = None if beta0 is None else torch.tensor(float(beta0), dtype=torch.float64)
        shape = s.batch_shape(rate_guess_bits)
        validation = self._batch(*shape)
        rate_bits, converged = rate_guess_bits, False
        betas: list[float] = []
        while steps < s.max_steps:
            x, z = self._batch(*shape)
            d = self._distances(x, z)
            if begin is None:
                begin = max(float(d.detach().mean()), goal)
            value = goal + (begin - goal) * max(0.0, 1.0 - steps / s.anneal_steps)
            if beta is None:
                beta_t, weights = self._slope(d.detach(), value, beta_t)
            else:
                beta_t = torch.tensor(value, dtype=torch.float64)
                beta_t, weights = self._slope(d.detach(), None, beta_t)
            betas.append(float(beta_t))
            loss = -(beta_t.to(d.dtype) / len(x)) * (weights * d).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average.update_parameters(self.generator)
            steps += 1
            if steps % s.window or steps < s.anneal_steps:
                continue
            objective, rate_bits, measured = self._validate(average.module, *validation, distortion, beta_t)
            if not measured:
                best, stale = math.inf, 0
            elif objective < best - s.tol_bits:
                best, stale = objective, 0
            else:
                stale += 1
            if stale == s.patience:  # a plateau
                if drops == s.lr_drops:
                    converged = True
                    break
                drops, stale, best = drops + 1, 0, objective
                lr *= s.lr_factor
                for group in optimizer.param_groups:
                    group["lr"] = lr
            if s.batch_shape(rate_bits) != shape:  # a new batch shape needs a new validation batch
                shape = s.batch_shape(rate_bits)
                validation, best = self._batch(*shape), math.inf
            betas = betas[-s.window :]
        self.generator.load_state_dict(average.module.state_dict())
        recent = betas[-s.window :]
        return TrainResult(
            beta=sum(recent) / len(recent),
            rate_bits=rate_bits,
            steps=steps,
            seconds=time.perf_counter() - t0,
            lr=lr,
            batch=shape,
            converged=converged,
        )
