"""The global maximum over y of  c(y) = sum_i w_i exp(-lam ||x_i - y||^2).

For squared error, c is (up to a constant) an isotropic Gaussian mixture density with
centroids x_i (k, dims), weights w_i = exp(log_weights_i) and per-component variance
1 / (2 lam). Gaussian mean-shift, y <- sum_i p_i(y) x_i with p_i(y) proportional to
w_i exp(-lam ||x_i - y||^2), is EM for this mixture: it never decreases c and converges to
a stationary point (Carreira-Perpinan 2007); every mode lies in the convex hull of the
centroids. :func:`mean_shift` over-relaxes it adaptively, keeping every step an ascent step.
Climbing from every centroid is the exhaustive search the lower bound uses at evaluation;
training may climb only from the ``starts`` centroids where c is largest.

Everything is in the log domain: log c(y) = logsumexp_i(log_weights_i - lam ||x_i - y||^2)
(nats, not normalized by k). lam is in nats per unit of squared distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Largest over-relaxation factor of a mean-shift step.
_MAX_RELAXATION = 2.0**20


@dataclass(frozen=True)
class Mode:
    """The best point the search found.

    y: (dims,). log_value: () log c(y) in nats. iterations: mean-shift iterations of the
    slowest start. converged: every start moved less than the tolerance at its last step.
    """

    y: torch.Tensor
    log_value: torch.Tensor
    iterations: int
    converged: bool


def squared_distances(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """||y_j - x_i||^2 for y (n, dims) and x (k, dims) -> (n, k), never negative."""
    d = y.square().sum(-1, keepdim=True) + x.square().sum(-1) - 2.0 * (y @ x.T)
    return d.clamp_min(0.0)


def log_mixture(y: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor, lam: float) -> torch.Tensor:
    """log c(y_j) for each row of y (n, dims) -> (n,), nats."""
    return torch.logsumexp(log_weights - lam * squared_distances(y, x), dim=-1)


def mean_shift(
    y: torch.Tensor, x: torch.Tensor, log_weights: torch.Tensor, lam: float, max_iterations: int, tolerance: float
) -> tuple[torch.Tensor, int, bool]:
    """Climb from each row of y (n, dims); returns (the end points (n, dims), iterations, converged).

    Adaptive over-relaxed mean-shift (as for EM, Salakhutdinov & Roweis 2003): from y, with the
    mean-shift point m, try y + eta (m - y); keep it and double eta if it does not lower c,
    otherwise take m and reset eta to 1. Every step is an ascent step, and the over-relaxation
    crosses the flat regions where plain mean-shift crawls. A start stops once its mean-shift
    step sqrt(lam) ||m - y|| (the gradient of log c, in kernel widths 1/sqrt(lam)) is below
    ``tolerance``; only the moving starts are updated.
    """
    y = y.clone()
    eta = torch.ones(y.shape[0], dtype=y.dtype, device=y.device)
    moving = torch.arange(y.shape[0], device=y.device)
    scale = math.sqrt(lam)
    for iteration in range(1, max_iterations + 1):
        current, relax = y[moving], eta[moving]
        logits = log_weights - lam * squared_distances(current, x)
        value = torch.logsumexp(logits, dim=-1)
        target = torch.softmax(logits, dim=-1) @ x
        candidate = current + relax[:, None] * (target - current)
        accept = log_mixture(candidate, x, log_weights, lam) >= value
        y[moving] = torch.where(accept[:, None], candidate, target)
        eta[moving] = torch.where(accept, (2 * relax).clamp_max(_MAX_RELAXATION), torch.ones_like(relax))
        moving = moving[scale * (target - current).norm(dim=-1) > tolerance]
        if moving.numel() == 0:
            return y, iteration, True
    return y, max_iterations, False


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
    ends, iterations, converged = mean_shift(begin, x, log_weights, lam, max_iterations, tolerance)
    values = log_mixture(ends, x, log_weights, lam)
    best = int(torch.argmax(values))
    return Mode(ends[best], values[best], iterations, converged)
