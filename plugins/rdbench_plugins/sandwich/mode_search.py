"""The global maximum over y of  c(y) = sum_i w_i exp(-lam ||x_i - y||^2).

For squared error, c is (up to a constant) an isotropic Gaussian mixture density with
centroids x_i (k, dims), weights w_i = exp(log_weights_i) and per-component variance
1 / (2 lam). Gaussian mean-shift, y <- m(y) = sum_i p_i(y) x_i with p_i(y) proportional to
w_i exp(-lam ||x_i - y||^2), is EM for this mixture: it never decreases c and converges to
a stationary point (Carreira-Perpinan 2007); every mode lies in the convex hull of the
centroids. :func:`mean_shift` over-relaxes it adaptively, keeping every step an ascent step.
Climbing from every centroid is the exhaustive search the lower bound uses at evaluation;
training may climb only from the ``starts`` centroids where c is largest.

Everything is in the log domain: log c(y) = logsumexp_i(log_weights_i - lam ||x_i - y||^2)
(nats, not normalized by k), its terms below exp(-70) of the largest raised to it
(:mod:`rdbench_plugins._logdomain`: no slow subnormals; c can only grow, so the lower bound
stays valid). lam is in nats per unit of squared distance.

Double-precision searches climb in two stages (:func:`mean_shift`): in single precision, about
the centroids' mean, to a coarse tolerance (most of the iterations, at half the cost each;
climbs that meet on the way go on as one), then in double precision to the requested
tolerance from one start per distinct end point (the starts that climbed to the same mode are
polished once), so the values and the stopping rule are double precision's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rdbench_plugins._logdomain import floor_exponents_

#: Largest over-relaxation factor of a mean-shift step.
_MAX_RELAXATION = 2.0**20
#: Points evaluated together: bounds the (rows, k) matrices so they stay in cache.
_ROWS = 128


@dataclass(frozen=True)
class Mode:
    """The best point the search found.

    y: (dims,). log_value: () log c(y) in nats. iterations: mean-shift iterations of the
    slowest start. converged: every start's last mean-shift step was below the tolerance.
    """

    y: torch.Tensor
    log_value: torch.Tensor
    iterations: int
    converged: bool


class _Mixture:
    """log c(y) and the mean-shift point m(y) for rows of y (n, dims), from one exp per term:
    log_weights_i - lam ||x_i - y||^2 = (log_weights_i - lam ||x_i||^2) + 2 lam x_i.y - lam ||y||^2."""

    def __init__(self, x: torch.Tensor, log_weights: torch.Tensor, lam: float) -> None:
        self.x, self.lam = x, lam
        self.bias = log_weights - lam * x.square().sum(-1)  # (k,)
        self.scaled_t = (2 * lam * x).T  # (dims, k)

    def _logits(self, y: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, y, self.scaled_t).sub_(self.lam * y.square().sum(-1, keepdim=True))

    def log_value(self, y: torch.Tensor) -> torch.Tensor:
        """log c(y): (n, dims) -> (n,), nats."""
        parts = [self._terms(rows) for rows in y.split(_ROWS)]
        return torch.cat([top + p.sum(-1).log() for top, p in parts])

    def value_and_mean(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log c(y) (n,), m(y) (n, dims)) for y (n, dims)."""
        if y.shape[0] <= _ROWS:
            return self._value_and_mean(y)
        parts = [self._value_and_mean(rows) for rows in y.split(_ROWS)]
        return torch.cat([v for v, _ in parts]), torch.cat([m for _, m in parts])

    def _terms(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the largest logit of each row (n,), the terms exp(logit - largest) (n, k))."""
        logits = self._logits(y)
        top = logits.amax(-1, keepdim=True)
        return top.squeeze(-1), floor_exponents_(logits.sub_(top)).exp_()

    def _value_and_mean(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top, p = self._terms(y)
        total = p.sum(-1)
        return top + total.log(), (p @ self.x) / total[:, None]


def log_mixture(y: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor, lam: float) -> torch.Tensor:
    """log c(y_j) for each row of y (n, dims) -> (n,), nats."""
    return _Mixture(x, log_weights, lam).log_value(y)


def _climb(
    y: torch.Tensor, mixture: _Mixture, max_iterations: int, tolerance: float, merge: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Over-relaxed mean-shift from the rows of y (n, dims): (end points, log c there, iterations, converged).

    merge: moving rows that meet in one cell of a grid this many kernel widths wide go on as
    one (the first), and the others end where it ends.
    """
    y = y.clone()
    leader = torch.arange(y.shape[0], device=y.device)
    value, mean = mixture.value_and_mean(y)
    eta = torch.ones(y.shape[0], dtype=y.dtype, device=y.device)
    scale = math.sqrt(mixture.lam)
    moving = torch.nonzero(scale * (mean - y).norm(dim=-1) > tolerance).squeeze(-1)
    iterations = 0
    while moving.numel() and iterations < max_iterations:
        iterations += 1
        here, shift, before, relax = y[moving], mean[moving], value[moving], eta[moving]
        candidate = shift + (relax - 1)[:, None] * (shift - here)  # here + relax (shift - here)
        after, after_mean = mixture.value_and_mean(candidate)
        accept = (after >= before) | (relax == 1)  # relax = 1 is the EM step: an ascent step
        if not bool(accept.all()):
            rejected = torch.nonzero(~accept).squeeze(-1)
            candidate[rejected] = shift[rejected]
            after[rejected], after_mean[rejected] = mixture.value_and_mean(shift[rejected])
        y[moving], value[moving], mean[moving] = candidate, after, after_mean
        eta[moving] = torch.where(accept, (2 * relax).clamp_max(_MAX_RELAXATION), torch.ones_like(relax))
        moving = moving[scale * (after_mean - candidate).norm(dim=-1) > tolerance]
        if merge is not None and moving.numel() > 1:
            _, group, first = _first_of_groups(torch.round(y[moving] * (scale / merge)))
            leader[moving] = moving[first[group]]
            moving = moving[first].sort().values
    while not bool((leader[leader] == leader).all()):  # a leader that later followed another
        leader = leader[leader]
    return y[leader], value[leader], iterations, moving.numel() == 0


#: Tolerance (kernel widths) of the single-precision stage of a double-precision search.
COARSE_TOLERANCE = 1e-3
#: In the single-precision stage, climbs that meet in one grid cell this many kernel widths
#: wide go on as one (the starts of a mode's basin meet on their way up to it).
PATH_MERGE_WIDTHS = 1e-2
#: End points of the coarse stage in one grid cell this many kernel widths wide are one start
#: of the fine stage: two modes that close differ in log c by about lam d^2 <= 1e-6 nats.
MERGE_WIDTHS = 1e-3


def mean_shift(
    y: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor, lam: float, max_iterations: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Climb from each row of y (n, dims): (end points (n, dims), log c there (n,), iterations
    of the slowest start, whether every start converged), in the precision of x.

    Double-precision inputs climb first in single precision, about the centroids' mean, to
    :data:`COARSE_TOLERANCE` (if tolerance is finer), climbs that meet within
    :data:`PATH_MERGE_WIDTHS` going on as one, then from one row per group of end points
    within :data:`MERGE_WIDTHS` of each other in double precision (:func:`_mean_shift`);
    every row of a group gets its representative's end point and value. Iterations are those of
    both stages; convergence is the double-precision stage's.
    """
    if x.dtype != torch.float64 or tolerance >= COARSE_TOLERANCE:
        return _mean_shift(y, x, log_weights, lam, max_iterations, tolerance)
    center = x.mean(0)
    coarse, _, first, _ = _climb(
        (y - center).float(),
        _Mixture((x - center).float(), log_weights.float(), lam),
        max_iterations,
        COARSE_TOLERANCE,
        merge=PATH_MERGE_WIDTHS,
    )
    grid = torch.round(coarse.double() * (math.sqrt(lam) / MERGE_WIDTHS))
    _, group, representative = _first_of_groups(grid)
    ends, values, second, converged = _mean_shift(
        coarse[representative].double() + center, x, log_weights, lam, max_iterations, tolerance
    )
    return ends[group], values[group], first + second, converged


def _first_of_groups(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(distinct rows, the group of each row (n,), the first row of each group (groups,))."""
    distinct, group = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((distinct.shape[0],), rows.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, group, torch.arange(rows.shape[0]), reduce="amin")
    return distinct, group, first


def _mean_shift(
    y: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor, lam: float, max_iterations: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """Climb from each row of y (n, dims): (end points (n, dims), log c there (n,), iterations
    of the slowest start, whether every start converged).

    Adaptive over-relaxed mean-shift (as for EM, Salakhutdinov & Roweis 2003): from y, with the
    mean-shift point m, try y + eta (m - y); keep it and double eta if it does not lower c,
    otherwise take m and reset eta to 1. Every step is an ascent step, and the over-relaxation
    crosses the flat regions where plain mean-shift crawls. A start stops once its mean-shift
    step sqrt(lam) ||m(y) - y|| (the gradient of log c, in kernel widths 1/sqrt(lam)) is at
    most ``tolerance``; only the moving starts are updated.
    """
    return _climb(y, _Mixture(x, log_weights, lam), max_iterations, tolerance)


@torch.no_grad()
def global_mode(
    x: torch.Tensor,
    log_weights: torch.Tensor,
    lam: float,
    *,
    starts: int | None = None,
    max_iterations: int = 2000,
    tolerance: float = 1e-6,
) -> Mode:
    """The highest mode of c over y, climbing from every centroid (``starts=None``: exhaustive)
    or from the ``starts`` centroids with the largest c (the training shortcut).

    x: (k, dims) centroids; log_weights: (k,) nats; lam >= 0, nats per unit squared distance.
    """
    if starts is not None and starts < x.shape[0]:
        begin = x[torch.topk(log_mixture(x, x, log_weights, lam), starts).indices]
    else:
        begin = x
    ends, values, iterations, converged = mean_shift(begin, x, log_weights, lam, max_iterations, tolerance)
    best = int(torch.argmax(values))
    return Mode(ends[best], values[best], iterations, converged)
