"""The sandwich lower bound: Csiszar's dual with a neural u (Yang & Mandt 2022, Sec. 3.2).

All quantities are in **nats** here and converted to bits (/ ln 2) only in the reported point.
For a slope lam > 0 (nats per unit distortion) and any u(x) > 0, with
C = sup_y E_X[exp(-lam d(X, y)) / u(X)],

    R(D) >= intercept - lam D  for every D,   intercept = E[-log u(X)] - log C.

u is an MLP that outputs log u (:class:`~rdbench_plugins._networks.LinearPlusMLP`). From a
batch of k i.i.d. realizations, C_k = sup_y (1/k) sum_i exp(-lam ||x_i - y||^2 - log u(x_i));
for squared error the sup is the global mode of a Gaussian mixture with centroids x_i
(:mod:`.mode_search`).
E[C_k] >= C, and the Jensen bias of -log C_k is removed by the tangent inequality
log E[C_k] <= E[C_k] / alpha + log alpha - 1 (any alpha > 0): per batch b,

    xi_b = mean_i(-log u(x_bi)) - C_b / alpha - log alpha + 1,

whose expectation lower-bounds the intercept. alpha is the mean of C_b over ``alpha_batches``
batches drawn independently of the ``eval_batches`` batches xi is averaged over (all from the
test split), so the estimate is unbiased for a lower bound; its interval is +-2 standard errors
over the batches. Every xi_b <= log k, so the intercept can never exceed log k nats
(``intercept_ceiling_bits`` = log2 k). The bias E[log C_k] - log C grows with the intercept:
the relative spread of C_k is about exp((intercept - log k) / 2). A point whose interval
reaches above half the ceiling is flagged ``near_ceiling``: the bound is valid but can be loose
by much more than its interval. (No flag is no promise of tightness: with a small k the
estimate can fall far below both R(D) and the ceiling.)

Training maximizes the plug-in intercept mean_i(-log u) - log C on batches of ``train_k``
realizations (<= k: a smaller batch trains faster, and a u that suits it suits a larger one),
climbing from the ``train_starts`` centroids with the largest mixture value for
``train_iterations`` steps; evaluation climbs from every distinct centroid until converged
(repeated realizations, as a finite data set gives, climb identically).

The slope (:mod:`rdbench.slopes`). ``slope=`` targets and distortion targets on a source with an
exact R(D) fix lam (the target's slope, or the exact |R'(D)|). Otherwise the only rule is the
high-rate one, k / D nats, which can be far too steep (about 25x on the 8 x 8 digits at
D/Dmax = 0.4, where it put the line tens of bits below zero). Then lam is learned: log lam
starts at the high-rate slope and is trained jointly with u (its own Adam learning rate,
``lambda_lr``) on the bound at the target distortion itself,

    maximize  plug-in intercept(u, lam) - lam D_target,

which is a lower bound on R(D_target) for every lam > 0, and for a fixed u concave in lam
(log C is a log-sum-exp of functions linear in lam, maximized over y). Its derivative in lam
is the mixture-weighted distortion at the mode minus D_target, taken with the mode held fixed
(the envelope theorem; the mode search uses the current lam). lam depends only on training
data, so the evaluation at the final lam is the same unbiased estimate as for a fixed lam.
Details: ``slope_rule`` ("learned (high-rate start)" when learned), ``slope_initial_bits``
and the final ``slope_bits``.

Along a curve (:meth:`SandwichLower.curve`, one cell for all of a source's targets) the targets
are trained from the steepest slope down, each after the first from a copy of the previous log u
with ``warm_fraction`` of the steps (a learned lambda starting at the previous final lambda
times the ratio of the two targets' slopes). Test batches are the same for every target.

Which D the line is evaluated at: the target distortion, or for ``slope=`` targets the
tangent point (:func:`rdbench.slopes.tangent_distortion`). The line is
R_L(D) = intercept - lam D (``line_rate_bits`` in the details); since R(D) >= 0 as well, the
point's rate_bits, rate_lower_bits and rate_upper_bits are the line's (and its +-2 SE
interval's) clipped below at 0. ``rate_ceiling_bits`` = max(log2 k - lam_bits D, 0), the
largest rate the method can report at that D. Squared error only: the mode search is exact
only there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rdbench.distortion import SquaredError
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.slopes import HIGH_RATE, Slope, tangent_distortion, target_slope
from rdbench.targets import Target
from rdbench.units import to_bits
from rdbench_plugins._lagrange import warm_lambda
from rdbench_plugins._networks import LinearPlusMLP, seeded
from rdbench_plugins._optimization import optimize, require_finite
from rdbench_plugins.sandwich.common import MeanSE, along_curve, samples, timed
from rdbench_plugins.sandwich.mode_search import global_mode, mean_shift

#: A point is flagged near the ceiling when its intercept interval reaches above this fraction of log2 k.
NEAR_CEILING = 0.5
#: ``slope_rule`` of a slope learned at the target distortion, starting from the high-rate slope.
LEARNED = "learned (high-rate start)"


def batch_intercept(x: torch.Tensor, log_u: torch.Tensor, y: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """mean_i(-log u_i) - log (1/k) sum_i exp(-lam ||x_i - y||^2 - log u_i), nats.

    x: (k, dims); log_u: (k,); y: (dims,) the batch's mode; lam: nats per unit distortion, a
    float or a () tensor. Differentiable in log_u and in a tensor lam (with y held fixed: at
    the sup over y that is the whole derivative, by the envelope theorem).
    """
    log_c = torch.logsumexp(-log_u - lam * (x - y).square().sum(-1), dim=0) - math.log(x.shape[0])
    return -log_u.mean() - log_c


@dataclass(frozen=True)
class BatchStatistics:
    """Per-batch numbers of the evaluation, nats; tensors of shape (B,).

    neg_log_u: mean_i(-log u(x_bi)). log_c: log C_b (the batch's sup, normalized by k).
    iterations: mean-shift iterations of the slowest start over all batches.
    """

    neg_log_u: torch.Tensor
    log_c: torch.Tensor
    iterations: int


@torch.no_grad()
def batch_statistics(
    x: torch.Tensor, log_u: torch.Tensor, lam: float, max_iterations: int, tolerance: float
) -> BatchStatistics:
    """Exhaustive mode search in each of B batches: x (B, k, dims), log u (B, k).

    The climb starts from every distinct centroid (repeated realizations, as a finite data set
    gives, climb identically, so each is climbed once). A start that has not converged within
    ``max_iterations`` raises RuntimeError: the sup, and with it the bound, would be in doubt.
    """
    log_c, iterations = [], 0
    for xb, lub in zip(x, log_u):
        starts = torch.unique(xb, dim=0)
        _, values, climbed, converged = mean_shift(starts, xb, -lub, lam, max_iterations, tolerance)
        if not converged:
            raise RuntimeError(
                f"sandwich-lower: the mode search did not converge within max_iterations={max_iterations}; "
                "no bound is reported (raise max_iterations)"
            )
        log_c.append(values.max() - math.log(xb.shape[0]))
        iterations = max(iterations, climbed)
    log_c = torch.stack(log_c)
    require_finite("sandwich-lower: log C of the test batches", log_c)
    return BatchStatistics(-log_u.mean(-1), log_c, iterations)


def linearized_intercepts(stats: BatchStatistics, log_alpha: float) -> torch.Tensor:
    """xi_b = mean_i(-log u) - C_b / alpha - log alpha + 1 per batch (B,), nats."""
    return stats.neg_log_u - torch.exp(stats.log_c - log_alpha) - log_alpha + 1.0


class SandwichLower(Estimator):
    """Lower bound on R(D) for squared-error sources; bits per realization.

    Settings: steps, k (realizations per evaluation batch: the sup is over a k-component
    mixture, and the intercept cannot exceed log2 k bits), train_k (realizations per training
    batch, <= k), lr (Adam), n_train (train-split realizations), hidden / layers (the log u
    network), train_starts / train_iterations (mode search in training), eval_batches /
    alpha_batches (independent test-split batches for the estimate and for alpha),
    max_iterations / tolerance (mean-shift; tolerance in kernel widths 1/sqrt(lam)),
    lambda_lr (Adam learning rate of log lambda when lambda is learned; see the module
    docstring), warm_fraction (the share of ``steps`` a warm-started fit along a curve
    trains), device (torch device).
    """

    def __init__(
        self,
        steps: int = 1000,
        k: int = 4096,
        train_k: int = 2048,
        lr: float = 1e-2,
        n_train: int = 50_000,
        hidden: int = 32,
        layers: int = 2,
        train_starts: int = 16,
        train_iterations: int = 20,
        eval_batches: int = 16,
        alpha_batches: int = 4,
        max_iterations: int = 2000,
        tolerance: float = 1e-4,
        lambda_lr: float = 0.05,
        warm_fraction: float = 0.4,
        device: str = "cpu",
    ) -> None:
        self.warm_fraction = float(warm_fraction)
        if not train_k <= min(k, n_train):
            raise ValueError(f"sandwich-lower: train_k ({train_k}) must be at most k ({k}) and n_train ({n_train})")
        self.steps, self.k, self.train_k = int(steps), int(k), int(train_k)
        self.lr, self.n_train = float(lr), int(n_train)
        self.hidden, self.layers = int(hidden), int(layers)
        self.train_starts, self.train_iterations = int(train_starts), int(train_iterations)
        self.eval_batches, self.alpha_batches = int(eval_batches), int(alpha_batches)
        self.max_iterations, self.tolerance = int(max_iterations), float(tolerance)
        self.lambda_lr = float(lambda_lr)
        self.device = torch.device(device)

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        return self.curve(source, [target], seed)[0]

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """One point per target (in the order given), trained from the steepest slope down,
        each after the first warm-started from the previous log u (and learned slope) with
        ``warm_fraction`` of the steps. The evaluation is the same unbiased estimate whatever
        u is, so a warm start can change only how tight the bound is."""
        if not isinstance(source.distortion, SquaredError):
            raise ValueError(
                f"sandwich-lower needs squared_error distortion (its mode search over y is exact only "
                f"there); this source uses {source.distortion.name!r}"
            )
        resolved = [t.resolve(source) for t in targets]
        slopes = [target_slope(source, t) for t in resolved]
        dims = math.prod(source.shape)
        train_x = samples(source, self.n_train, seed, "train", self.device, torch.float32)
        batches = self.alpha_batches + self.eval_batches
        test_x = samples(source, batches * self.k, seed, "test", self.device, torch.float64).reshape(
            batches, self.k, dims
        )

        def fit(i: int, previous: tuple[torch.nn.Module, Slope, float] | None):
            point, log_u, lam = self._fit(source, resolved[i], slopes[i], seed, train_x, test_x, previous)
            return point, (log_u, slopes[i], lam)

        return along_curve(slopes, fit)

    def _fit(
        self,
        source: Source,
        target: Target,
        slope: Slope,
        seed: int,
        train_x: torch.Tensor,
        test_x: torch.Tensor,
        previous: tuple[torch.nn.Module, Slope, float] | None,
    ) -> tuple[RDPoint, torch.nn.Module, float]:
        """(the point, the trained log u, its slope lambda in nats per unit distortion)."""
        if target.distortion is not None:
            distortion, distortion_rule = float(target.distortion), "target"
        else:
            distortion, distortion_rule = tangent_distortion(source, slope)
        dims = math.prod(source.shape)
        learn = slope.rule == HIGH_RATE  # no trustworthy slope: learn it at the target distortion
        lam_start, lam_start_bits = slope.nats, slope.bits
        if previous is None:
            log_u = seeded(seed, lambda: LinearPlusMLP(dims, 1, self.hidden, self.layers, identity=False)).to(
                self.device
            )
            steps = self.steps
        else:
            log_u, steps = copy.deepcopy(previous[0]), max(1, round(self.warm_fraction * self.steps))
            if learn:
                lam_start = warm_lambda(previous[2], previous[1].nats, slope.nats)
                lam_start_bits = to_bits(lam_start)
        log_lam = torch.nn.Parameter(torch.tensor(math.log(lam_start), device=self.device))
        generator = torch.Generator(device=self.device).manual_seed(seed)

        def loss_at(step: int) -> torch.Tensor:
            x = train_x[torch.randperm(self.n_train, generator=generator, device=self.device)[: self.train_k]]
            lu = log_u(x).squeeze(-1)
            lam = log_lam.exp() if learn else slope.nats
            mode = global_mode(  # at the current lambda, held fixed
                x,
                -lu.detach(),
                float(lam.detach()) if learn else lam,
                starts=self.train_starts,
                max_iterations=self.train_iterations,
                tolerance=self.tolerance,
            )
            bound = batch_intercept(x, lu, mode.y, lam)  # a lower bound on R(D) + lam D, nats
            return -(bound - lam * distortion) if learn else -bound

        groups: list[dict[str, Any]] = [{"params": list(log_u.parameters())}]
        if learn:
            groups.append({"params": [log_lam], "lr": self.lambda_lr})
        timings: dict[str, float] = {}
        with timed(timings, "train"):
            optimize(groups, loss_at, steps=steps, lr=self.lr, what="sandwich-lower")
        lam = float(log_lam.detach().exp()) if learn else slope.nats
        require_finite("sandwich-lower: the learned slope lambda", lam)
        lam_bits = to_bits(lam) if learn else slope.bits
        with timed(timings, "eval"):
            a = self.alpha_batches
            with torch.no_grad():
                test_log_u = log_u(test_x.float()).squeeze(-1).double()
            require_finite("sandwich-lower: log u on the test batches", test_log_u)
            alpha_stats = batch_statistics(test_x[:a], test_log_u[:a], lam, self.max_iterations, self.tolerance)
            stats = batch_statistics(test_x[a:], test_log_u[a:], lam, self.max_iterations, self.tolerance)
            log_alpha = float(torch.logsumexp(alpha_stats.log_c, 0) - math.log(a))
            intercept = MeanSE.of(linearized_intercepts(stats, log_alpha), "sandwich-lower: the intercept")
            plug_in = float((stats.neg_log_u - stats.log_c).mean())

        intercept_bits, se_bits = to_bits(intercept.mean), to_bits(intercept.se)
        offset = lam_bits * distortion
        line = intercept_bits - offset
        details: dict[str, Any] = {
            "slope_bits": lam_bits,
            "slope_initial_bits": lam_start_bits,
            "slope_rule": LEARNED if learn else slope.rule,
            "warm_start": previous is not None,
            "line_rate_bits": line,
            "distortion_rule": distortion_rule,
            "intercept_bits": intercept_bits,
            "intercept_se_bits": se_bits,
            "intercept_lower_bits": intercept_bits - 2 * se_bits,
            "intercept_upper_bits": intercept_bits + 2 * se_bits,
            "intercept_ceiling_bits": math.log2(self.k),
            "near_ceiling": intercept_bits + 2 * se_bits > NEAR_CEILING * math.log2(self.k),
            "plug_in_intercept_bits": to_bits(plug_in),
            "log_alpha_nats": log_alpha,
            "k": self.k,
            "train_k": self.train_k,
            "eval_batches": self.eval_batches,
            "alpha_batches": self.alpha_batches,
            "mode_search_iterations": max(stats.iterations, alpha_stats.iterations),
            "steps": steps,
            **timings,
        }
        return (
            RDPoint(  # R(D) >= 0 too: the line is clipped at 0
                rate_bits=max(line, 0.0),
                distortion=distortion,
                bound="lower",
                rate_lower_bits=max(line - 2 * se_bits, 0.0),
                rate_upper_bits=max(line + 2 * se_bits, 0.0),
                rate_ceiling_bits=max(math.log2(self.k) - offset, 0.0),
                details=details,
            ),
            log_u,
            lam,
        )
