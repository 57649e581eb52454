"""Reading the rate and distortion of a trained generator off fresh source samples.

The estimate at a slope beta is a mean over source samples x of per-sample quantities
(lme(x), the channel's distortion D(x), its variance) computed against M generator samples.
M must be large (M >> 2^R, paper Sec. III-A: the estimate can never exceed log M), and the
per-sample quantities vary a lot from one x to the next (their variance is of the order of
the dimension, in nats^2), so a plain mean needs both many x and many y. A two-level
(multilevel Monte Carlo) estimator gets both for a fraction of the cost::

    E q  ~  mean over n_coarse x of q_{M_c}(x)  +  mean over n_fine x of (q_M(x) - q_{M_c}(x))

where q_{M_c} uses only the first M_c << M of the same generator samples. The coarse term
carries the variation between samples x, cheaply; the correction term removes the bias of
the small M_c and varies little from one x to the next.

In the distortion-constrained form beta is solved so that the estimated D equals D*
(:func:`~rdbench_plugins._dual.newton_beta`, warm-started from the training slope, which
is biased by the training batches' smaller M); in the Lagrangian form beta is the given one.
Distances and exponentials are float32 (relative to each row's nearest reproduction);
the sums over reproductions and every mean are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from rdbench.units import to_bits
from rdbench_plugins._dual import Pairwise, Workspace, channel_stats, newton_beta


@dataclass(frozen=True)
class ReadoutSettings:
    """Sample sizes of the read-out.

    n_fine, n_coarse: source samples (``test`` split) of the two levels. M (generator
    samples) = 2^ceil(R + m_margin_bits) within [m_min, m_max], and M_c =
    2^ceil(R + coarse_margin_bits) within [coarse_min, min(coarse_max, M)], R being the
    training's rate estimate. chunk_pairs: distances held at once. rtol: relative
    tolerance on D* for the slope.
    """

    n_fine: int = 4096
    n_coarse: int = 131072
    m_min: int = 2**12
    m_max: int = 2**17
    m_margin_bits: float = 9.0
    coarse_min: int = 256
    coarse_max: int = 2048
    coarse_margin_bits: float = 3.0
    chunk_pairs: int = 2**20
    rtol: float = 1e-3

    def sizes(self, rate_bits: float) -> tuple[int, int]:
        """(M, M_c) for a rate estimate in bits."""
        rate = max(rate_bits, 0.0)
        m = int(min(max(2 ** math.ceil(rate + self.m_margin_bits), self.m_min), self.m_max))
        mc = int(min(max(2 ** math.ceil(rate + self.coarse_margin_bits), self.coarse_min), self.coarse_max, m))
        return m, mc


@dataclass(frozen=True)
class Readout:
    """One point: beta (nats per unit distortion), distortion, rate_bits.

    rate_stderr_bits: standard error of the rate from the finite source samples (not
    counting the bias of a finite M, nor how far the generator is from optimal).
    converged: the estimated D met D* within rtol (always True in the Lagrangian form).
    iterations: passes over the samples. m, m_coarse: generator samples of the two levels.
    """

    beta: float
    distortion: float
    rate_bits: float
    rate_stderr_bits: float
    converged: bool
    iterations: int
    m: int
    m_coarse: int


def _row_chunks(x: torch.Tensor, width: int, chunk_pairs: int) -> tuple[torch.Tensor, ...]:
    return torch.split(x, max(1, chunk_pairs // width))


@torch.no_grad()
def read_out(
    generator: nn.Module,
    z: torch.Tensor,
    x_fine: torch.Tensor,
    x_coarse: torch.Tensor,
    pairwise: Pairwise,
    m_coarse: int,
    beta: float,
    distortion: float | None,
    settings: ReadoutSettings,
) -> Readout:
    """The point of ``generator`` at D* = ``distortion`` (beta: the warm start) or at ``beta``.

    z: (M, latent_dim) latent samples; x_fine (n_fine, k), x_coarse (n_coarse, k): flattened
    source samples, all on the generator's device.
    """
    y = torch.cat([generator(part).reshape(len(part), -1) for part in torch.split(z, 4096)])
    yc = y[:m_coarse]

    spaces = [Workspace() for _ in range(3)]

    def evaluate(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float, float]]:
        coarse = [
            channel_stats(pairwise(xc, yc), b, spaces[0])
            for xc in _row_chunks(x_coarse, m_coarse, settings.chunk_pairs)
        ]
        fine, fine_c = [], []
        for xf in _row_chunks(x_fine, len(y), settings.chunk_pairs):
            d = pairwise(xf, y)
            fine.append(channel_stats(d, b, spaces[1]))
            fine_c.append(channel_stats(d[:, :m_coarse], b, spaces[2]))

        def level(stats: list, name: str) -> torch.Tensor:
            return torch.cat([getattr(s, name) for s in stats])

        means = {}
        for name in ("lme", "distortion", "variance"):
            correction = level(fine, name) - level(fine_c, name)
            means[name] = level(coarse, name).mean() + correction.mean()
        lme_c, lme_diff = level(coarse, "lme"), level(fine, "lme") - level(fine_c, "lme")
        stderr = torch.sqrt(lme_c.var() / len(lme_c) + lme_diff.var() / len(lme_diff))
        rate = float(b * means["distortion"] - means["lme"])
        return means["distortion"], means["variance"], (float(means["distortion"]), rate, float(stderr))

    b0 = torch.tensor(float(beta), dtype=torch.float64)
    if distortion is None:
        _, _, (dist, rate, stderr) = evaluate(b0)
        return Readout(float(b0), dist, to_bits(rate), to_bits(stderr), True, 1, len(y), m_coarse)
    target = torch.tensor(float(distortion), dtype=torch.float64)
    result = newton_beta(evaluate, target, b0, target, rtol=settings.rtol)
    dist, rate, stderr = result.payload
    return Readout(
        beta=float(result.beta),
        distortion=dist,
        rate_bits=to_bits(rate),
        rate_stderr_bits=to_bits(stderr),
        converged=bool(result.converged),
        iterations=result.iterations,
        m=len(y),
        m_coarse=m_coarse,
    )
