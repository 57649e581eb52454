"""The inner maximization over the slope (NERD's paper eq. 6-8, 11), in the log domain;
shared by NERD (reproductions drawn from its generator, equal weights) and WGD (weighted
particles, ``log_weights``).

Everything here is in **nats**; ``beta`` is the paper's slope beta~ <= 0 in nats per unit of
distortion (at the optimum it is dR/dD of the estimated curve).

For distances ``d`` of shape (..., n, M) between n source samples x_i and M reproductions
y_j (one problem per leading index), and a slope beta <= 0, row i defines

    lme_i(beta) = log (1/M) sum_j exp(beta d_ij)          (a log-mean-exp)
    w_ij(beta)  = exp(beta d_ij - lme_i) / M               (the channel Q*_{Y|X=x_i} on the y_j)
    D(beta)     = mean_i sum_j w_ij d_ij                    (its distortion)
    V(beta)     = mean_i sum_j w_ij (d_ij - D_i)^2          (= dD/dbeta >= 0)

The dual objective F(beta) = beta D* - mean_i lme_i(beta) is concave with F' = D* - D(beta) and
F'' = -V(beta). Its maximizer over beta <= 0 is 0 when D* >= D(0) = mean d, and otherwise the
root of D(beta) = D* (eq. 8), found by :func:`newton_beta`: Newton in u = log(-beta),
safeguarded by bisection. At any beta the channel's rate is
``beta D(beta) - mean_i lme_i = mean_i KL(w_i || uniform)``, between 0 and log M.

Exponentials are taken relative to each row's nearest reproduction, exp(beta (d_ij - min_j d_ij))
in [0, 1], so nothing overflows or loses the row however large the distances (terms below
exp(-70) relative to the largest are raised to it: :mod:`rdbench_plugins._logdomain`); the sums
over reproductions and every per-row statistic are float64 whatever the dtype of ``d``.

With ``log_weights`` (M,) (ln w_j, sum_j w_j = 1) the uniform 1/M becomes w_j:
lme_i = log sum_j w_j exp(beta d_ij), w_ij proportional to w_j exp(beta d_ij), and the rate
``beta D - mean_i lme_i`` is mean_i KL(w_i || w), at most max_j ln(1 / w_j).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from rdbench_plugins._logdomain import floor_exponents_

#: A distortion measure's pairwise torch form (``Distortion.torch_pairwise``): x (n, k), y (M, k) -> (n, M).
Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Largest Newton move in u = log(-beta) per iteration (a factor e^2 on beta).
MAX_LOG_STEP = 2.0
#: Stop once the root is bracketed within this width in u (a relative change of beta).
BRACKET_TOL = 1e-10
#: |beta| stays within these multiples of 1 / scale (scale: a typical distance, e.g. D(0)).
BETA_RANGE = (1e-12, 1e8)

P = TypeVar("P")


@dataclass(frozen=True)
class ChannelStats:
    """Per-row statistics of the channel at one slope; float64, shape (..., n) unless noted.

    lme: log-mean-exp of beta d over the reproductions (nats). distortion: E_w d.
    variance: Var_w d. weights: the channel w, shape (..., n, M), dtype of d
    (the gradient of lme_i with respect to d_ij is beta w_ij).
    """

    lme: torch.Tensor
    distortion: torch.Tensor
    variance: torch.Tensor
    weights: torch.Tensor

    def rate(self, beta: torch.Tensor) -> torch.Tensor:
        """KL(w_i || uniform) = beta D_i - lme_i per row, nats (beta of shape (...,))."""
        return beta[..., None] * self.distortion - self.lme


class Workspace:
    """Three reusable buffers of the distances' shape for :func:`channel_stats`.

    Fresh multi-megabyte allocations (page faults) cost more than the arithmetic on them,
    so repeated evaluations on same-shaped distances (Newton iterations, training steps,
    read-out chunks) share one workspace. What is returned lives in it until its next use.
    """

    def __init__(self) -> None:
        self._buffers: tuple[torch.Tensor, ...] | None = None

    def buffers(self, d: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = self._buffers
        if b is None or b[0].shape != d.shape or b[0].dtype != d.dtype or b[0].device != d.device:
            b = self._buffers = tuple(torch.empty_like(d, memory_format=torch.contiguous_format) for _ in range(3))
        return b


@dataclass(frozen=True)
class Shifted:
    """Distances d (..., n, M) relative to each row's nearest reproduction: what every
    evaluation of :func:`channel_stats` on the same d shares (a Newton solve computes it once).

    nearest: (..., n, 1) min_j d_ij; shifted: d - nearest; squared: shifted ** 2; weights: the
    buffer the channel is computed in. The last three live in a :class:`Workspace`.
    """

    nearest: torch.Tensor
    shifted: torch.Tensor
    squared: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def of(cls, d: torch.Tensor, workspace: Workspace | None = None) -> Shifted:
        shifted, squared, weights = (workspace or Workspace()).buffers(d)
        nearest = d.amin(-1, keepdim=True)
        torch.sub(d, nearest, out=shifted)
        torch.square(shifted, out=squared)
        return cls(nearest, shifted, squared, weights)


def channel_stats(
    d: torch.Tensor | Shifted,
    beta: torch.Tensor,
    workspace: Workspace | None = None,
    log_weights: torch.Tensor | None = None,
) -> ChannelStats:
    """:class:`ChannelStats` of distances d (..., n, M), or of their :class:`Shifted` form (whose
    buffers are then used), at slopes beta (...,), beta <= 0; log_weights: ln w_j (M,) of
    weighted reproductions (None: all 1/M)."""
    beta = beta.to(torch.float64)
    s = d if isinstance(d, Shifted) else Shifted.of(d, workspace)
    shifted, w = s.shifted, s.weights
    torch.mul(shifted, beta.to(shifted.dtype)[..., None, None], out=w)
    offset = -math.log(shifted.shape[-1])
    if log_weights is not None:  # exponent beta (d - nearest) + ln w_j - max ln w, shifted to a row maximum of 0
        top_weight = float(log_weights.max())
        w.add_((log_weights - top_weight).to(shifted.dtype))
        top = w.amax(-1, keepdim=True)
        w.sub_(top)
        offset = top.squeeze(-1).to(torch.float64) + top_weight
    floor_exponents_(w).exp_()  # in [0, 1]; 1 at the row's largest term
    total = w.sum(-1, dtype=torch.float64)  # >= 1
    w.div_(total.to(shifted.dtype)[..., None])
    m1 = torch.linalg.vecdot(w, shifted).to(torch.float64)
    m2 = torch.linalg.vecdot(w, s.squared).to(torch.float64)
    near = s.nearest.squeeze(-1).to(torch.float64)
    lme = beta[..., None] * near + torch.log(total) + offset
    return ChannelStats(lme, near + m1, (m2 - m1 * m1).clamp_min(0.0), w)


@dataclass(frozen=True)
class NewtonResult(Generic[P]):
    """beta (...,) float64; converged (...,) bool; payload: what ``evaluate`` returned at beta."""

    beta: torch.Tensor
    converged: torch.Tensor
    iterations: int
    payload: P


def newton_beta(
    evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, P]],
    target: torch.Tensor,
    beta0: torch.Tensor,
    scale: torch.Tensor,
    *,
    rtol: float = 1e-4,
    max_iter: int = 50,
) -> NewtonResult[P]:
    """Solve D(beta) = D* for beta < 0, one scalar problem per element of ``target``.

    evaluate(beta) -> (D(beta), V(beta), payload) for a float64 beta of the problems' shape.
    beta0: the first guess (< 0); problems whose beta0 is exactly 0 stay at 0 (their
    constraint is slack). scale: a typical distance per problem; |beta| is kept within
    :data:`BETA_RANGE` / scale. Newton steps in u = log(-beta) are capped at
    :data:`MAX_LOG_STEP` and replaced by bisection whenever they leave the bracket that the
    evaluations so far have established. Converged: |D(beta) - D*| <= rtol D* (or pinned at 0).
    An unreachable target (below mean_i min_j d_ij) sends beta to the end of its range,
    unconverged.
    """
    target = target.to(torch.float64)
    pinned = beta0 == 0
    u_min = torch.log(BETA_RANGE[0] / scale.to(torch.float64))
    u_max = torch.log(BETA_RANGE[1] / scale.to(torch.float64))
    u = torch.log((-beta0.to(torch.float64)).clamp_min(1e-300)).clamp(u_min, u_max)
    lo = torch.full_like(u, -math.inf)  # largest u known to give D > D*
    hi = torch.full_like(u, math.inf)  # smallest u known to give D < D*
    done = pinned.clone()
    for iterations in range(1, max_iter + 1):
        beta = torch.where(pinned, torch.zeros_like(u), -torch.exp(u))
        dist, var, payload = evaluate(beta)
        gap = dist - target  # > 0: |beta| too small
        met = pinned | (gap.abs() <= rtol * target)
        done = done | met
        if bool(done.all()) or iterations == max_iter:
            return NewtonResult(beta, met, iterations, payload)
        lo = torch.where(gap > 0, torch.maximum(lo, u), lo)
        hi = torch.where(gap < 0, torch.minimum(hi, u), hi)
        step = torch.nan_to_num(gap / (var * torch.exp(u)), nan=0.0).clamp(-MAX_LOG_STEP, MAX_LOG_STEP)
        newton = u + step
        bisect = torch.where(torch.isfinite(lo + hi), 0.5 * (lo + hi), newton)
        u_next = torch.where((newton > lo) & (newton < hi), newton, bisect).clamp(u_min, u_max)
        done = done | (u_next == u) | (hi - lo <= BRACKET_TOL)  # end of the range, or bracketed
        u = torch.where(done, u, u_next)
    raise ValueError(f"max_iter must be >= 1, got {max_iter}")


@dataclass(frozen=True)
class BetaSolution:
    """The solved slope of each problem; float64 tensors of shape (...,) unless noted.

    beta: nats per unit distortion, <= 0. distortion: D(beta). rate: the dual objective at
    beta, mean_i KL(w_i || uniform), nats. converged: see :func:`newton_beta`.
    iterations: channel evaluations. weights: the channel at beta, (..., n, M): the gradient
    of mean_i lme_i with respect to d_ij is beta w_ij / n, so a training step needs no
    second pass over the distances.
    """

    beta: torch.Tensor
    distortion: torch.Tensor
    rate: torch.Tensor
    converged: torch.Tensor
    iterations: int
    weights: torch.Tensor


def solve_beta(
    d: torch.Tensor,
    target: float | torch.Tensor,
    beta0: float | torch.Tensor | None = None,
    *,
    rtol: float = 1e-4,
    max_iter: int = 50,
    workspace: Workspace | None = None,
    log_weights: torch.Tensor | None = None,
    row_weights: torch.Tensor | None = None,
) -> BetaSolution:
    """Solve sup_{beta <= 0} beta D* - mean_i lme_i(beta) for each problem of d (..., n, M).

    target: D* (broadcast to d.shape[:-2]). beta0: a warm start, e.g. the previous training
    step's slope; without it the first guess is the Newton step from beta = 0,
    (D* - D(0)) / V(0). Problems with D* >= D(0) = mean d get beta = 0 exactly.
    workspace: buffers to reuse (the returned weights live in it). log_weights: ln w_j (M,) of
    weighted reproductions (see :func:`channel_stats`; D(0) is then the w-weighted mean).
    row_weights: probabilities (n,) of the rows (an exact discrete source; None: the mean).
    """
    workspace = workspace or Workspace()
    d = d.detach()
    batch = d.shape[:-2]
    target_t = torch.as_tensor(target, dtype=torch.float64, device=d.device).expand(batch)
    if log_weights is None and row_weights is None:
        d0 = d.mean((-2, -1), dtype=torch.float64)
    else:  # D(0) = sum_i p_i sum_j w_j d_ij
        rows = d.mean(-2, dtype=torch.float64) if row_weights is None else row_weights.to(torch.float64) @ d.double()
        d0 = rows.mean(-1) if log_weights is None else torch.linalg.vecdot(rows, log_weights.to(torch.float64).exp())

    def average(per_row: torch.Tensor) -> torch.Tensor:
        return per_row.mean(-1) if row_weights is None else per_row @ row_weights.to(torch.float64)

    if beta0 is None:
        v0 = d.to(torch.float64).var(-1, correction=0).mean(-1)
        guess = (target_t - d0) / v0.clamp_min(1e-300)
    else:
        guess = torch.as_tensor(beta0, dtype=torch.float64, device=d.device).expand(batch)
    guess = torch.where(target_t >= d0, torch.zeros_like(guess), guess.clamp_max(-1e-300))

    shifted = Shifted.of(d, workspace)  # shared by every evaluation

    def evaluate(beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, ChannelStats]:
        stats = channel_stats(shifted, beta, log_weights=log_weights)
        return average(stats.distortion), average(stats.variance), stats

    result = newton_beta(evaluate, target_t, guess, d0.clamp_min(1e-300), rtol=rtol, max_iter=max_iter)
    stats, beta = result.payload, result.beta
    return BetaSolution(
        beta, average(stats.distortion), average(stats.rate(beta)), result.converged, result.iterations, stats.weights
    )
