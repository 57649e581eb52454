"""The learned factorized density of NTC's latents (Ballé et al. 2018, Appendix 6.1).

One density per latent channel, shared by every position of that channel. Each is given by
its cumulative function c(y) = sigmoid(f(y)), with f a monotone network: the composition of
layers x -> h(H x + b), H with positive entries (softplus of a free matrix) and
h(x) = x + tanh(a) * tanh(x) (tanh(a) > -1 keeps it increasing). The probability of the
rounding cell around y is c(y + 1/2) - c(y - 1/2), computed from the two logits in log
space, so the tails keep their gradient and the probability of the integers sums to 1 exactly
(by telescoping). This is what CompressAI calls the EntropyBottleneck, without its
auxiliary quantile loss: the coding tables' support is found by bisection on c instead.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rdbench.entropy_coding import IntegerModel

_LOG_FLOOR = -70.0  # log-probability floor of a rounding cell (about -101 bits)


def log_sigmoid_difference(lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(upper) - sigmoid(lower)) for upper > lower, stable in both tails.

    sigmoid(b) - sigmoid(a) = (e^b - e^a) / ((1 + e^a)(1 + e^b)), so its log is
    b + log(1 - e^(a - b)) - softplus(a) - softplus(b).
    """
    gap = torch.clamp(upper - lower, min=1e-30)
    value = upper + torch.log(-torch.expm1(-gap)) - F.softplus(lower) - F.softplus(upper)
    return torch.clamp(value, min=_LOG_FLOOR)


class FactorizedDensity(nn.Module):
    """A monotone-CDF density per channel; ``log_cell_probability`` of (channels, N) latents."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))

    def logits(self, y: torch.Tensor) -> torch.Tensor:
        """f(y), the logit of the cumulative function: (channels, N) -> (channels, N)."""
        x = y.unsqueeze(1)
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x.squeeze(1)

    def log_cell_probability(self, y: torch.Tensor) -> torch.Tensor:
        """Natural log of P(cell [y - 1/2, y + 1/2]) per channel: (channels, N) -> (channels, N).

        At integer y this is the probability of the rounded latent; at y + uniform noise it
        is the density of the noisy latent used in training.
        """
        lower, upper = self.logits(torch.cat([y - 0.5, y + 0.5], dim=1)).chunk(2, dim=1)  # one pass for both edges
        return log_sigmoid_difference(lower, upper)

    @torch.no_grad()
    def quantile(self, probability: float, iterations: int = 80) -> torch.Tensor:
        """(channels,) points q with c(q) = probability, by bisection (float64)."""
        target = math.log(probability) - math.log1p(-probability)
        dtype = self.matrices[0].dtype
        lo = torch.full((self.channels, 1), -1.0, dtype=dtype)
        hi = torch.full((self.channels, 1), 1.0, dtype=dtype)
        for _ in range(64):  # widen the bracket until it holds every channel's quantile
            if bool((self.logits(lo) <= target).all() and (self.logits(hi) >= target).all()):
                break
            lo, hi = lo * 2, hi * 2
        else:
            raise ValueError("the learned density's quantiles lie beyond 2**64: training diverged")
        for _ in range(iterations):
            mid = (lo + hi) / 2
            below = self.logits(mid) < target
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return ((lo + hi) / 2).squeeze(1)

    @torch.no_grad()
    def coding_models(self, tail_mass: float, max_support: int, precision: int) -> list[IntegerModel]:
        """One quantized integer model per channel, for the range coder.

        The support is the integers between the tail_mass/2 and 1 - tail_mass/2 quantiles (at
        most ``max_support`` of them, centred on the median); the mass outside is the escape's.
        Computed in float64 on the CPU so that encoder and decoder build identical tables.
        """
        density = _cpu_double_copy(self)
        low = torch.floor(density.quantile(tail_mass / 2))
        high = torch.ceil(density.quantile(1 - tail_mass / 2))
        median = torch.round(density.quantile(0.5))
        half = (max_support - 1) // 2
        low = torch.maximum(low, median - half)
        high = torch.minimum(high, median + half)
        start = int(low.min())
        grid = torch.arange(start, int(high.max()) + 2, dtype=torch.float64) - 0.5  # every cell edge
        edges = density.logits(grid.expand(self.channels, -1))
        models = []
        for c in range(self.channels):
            e = edges[c, int(low[c]) - start : int(high[c]) - start + 2]
            log_p = log_sigmoid_difference(e[:-1], e[1:])
            escape = float(torch.sigmoid(e[0]) + torch.sigmoid(-e[-1]))
            models.append(IntegerModel.from_probabilities(torch.exp(log_p).numpy(), int(low[c]), escape, precision))
        return models

    @torch.no_grad()
    def ideal_bits(self, symbols: np.ndarray) -> float:
        """-log2 P(symbols) under the (unquantized) density: symbols (channels, N) integers."""
        density = _cpu_double_copy(self)
        log_p = density.log_cell_probability(torch.as_tensor(symbols, dtype=torch.float64))
        return float(-log_p.sum() / math.log(2))


def _cpu_double_copy(density: FactorizedDensity) -> FactorizedDensity:
    return copy.deepcopy(density).to("cpu", torch.float64)
