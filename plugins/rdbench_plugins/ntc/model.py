"""The NTC model: analysis transform, integer rounding, factorized density, synthesis transform.

Shapes: realizations x are (N, *shape); latents y are (N, *latent_shape), with
latent_shape (k,) for vectors and (L, h, w) for images. The density has one channel per
latent dimension (vectors) or per latent channel (images, shared over positions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn

from rdbench_plugins.ntc.density import FactorizedDensity
from rdbench_plugins.ntc.transforms import build_transforms

Quantization = Literal["noise", "mixed"]
_CHUNK = 8192  # realizations per forward pass at evaluation


class NTCModel(nn.Module):
    """Transforms and density of one NTC codec for realizations of ``shape``."""

    def __init__(self, shape: tuple[int, ...], latent: int | None, hidden: int | None, step: float) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.analysis, self.synthesis, self.latent_shape = build_transforms(self.shape, latent, hidden, step)
        self.density = FactorizedDensity(self.latent_shape[0])
        #: Quantizer gain g: the coded latents are round(g y) and the synthesis sees them / g,
        #: so g < 1 quantizes more coarsely. Training keeps g = 1; :func:`.training.calibrate_gain`
        #: sets it last, to land on a target distortion.
        self.register_buffer("gain", torch.ones((), dtype=torch.float64))

    @property
    def positions(self) -> int:
        """Latent positions per channel in one realization (1 for vectors, h*w for images)."""
        return math.prod(self.latent_shape[1:])

    @property
    def model_index(self) -> np.ndarray:
        """(prod(latent_shape),) density channel of each entry of a flattened latent."""
        return np.repeat(np.arange(self.latent_shape[0]), self.positions)

    def _flat_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if len(self.shape) == 3 else x.reshape(x.shape[0], math.prod(self.shape))

    def channels_first(self, y: torch.Tensor) -> torch.Tensor:
        """(N, *latent_shape) -> (channels, N * positions), the density's layout."""
        channels, n = self.latent_shape[0], y.shape[0]
        return y.reshape(n, channels, self.positions).transpose(0, 1).reshape(channels, n * self.positions)

    def rate_bits(self, y: torch.Tensor) -> torch.Tensor:
        """(N,) bits per realization: -log2 of the cell probabilities of the latents y."""
        log_p = self.density.log_cell_probability(self.channels_first(y))
        return -log_p.reshape(self.latent_shape[0], y.shape[0], self.positions).sum(dim=(0, 2)) / math.log(2)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator, quantization: Quantization
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (rate in bits per realization (N,), reconstruction (N, *shape)).

        The rate is always that of y + U(-1/2, 1/2). The synthesis sees the same noisy latent
        (``noise``) or the rounded one with a straight-through gradient (``mixed``).
        """
        y = self.analysis(self._flat_input(x))
        noisy = y + torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
        y_hat = noisy if quantization == "noise" else y + (torch.round(y) - y).detach()
        return self.rate_bits(noisy), self.synthesis(y_hat).reshape(x.shape)

    def rounded_distortion(self, x: torch.Tensor, distortion: Callable) -> torch.Tensor:
        """Mean distortion of the synthesis on truly rounded latents; the analysis gets no gradient."""
        with torch.no_grad():
            y_hat = torch.round(self.analysis(self._flat_input(x)))
        return distortion(x, self.synthesis(y_hat).reshape(x.shape)).mean()

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """(N, *shape) -> (N, *latent_shape) int64: the rounded latents round(gain * y)."""
        gain = float(self.gain)
        return torch.cat([torch.round(self.analysis(self._flat_input(c)) * gain) for c in x.split(_CHUNK)]).long()

    @torch.no_grad()
    def synthesize(self, symbols: torch.Tensor) -> torch.Tensor:
        """(N, *latent_shape) integer latents -> (N, *shape) reconstructions, in fixed chunks
        so that the encoder's and the decoder's reconstructions agree bit for bit."""
        dtype, gain = next(self.parameters()).dtype, float(self.gain)
        parts = [self.synthesis(c.to(dtype) / gain) for c in symbols.split(_CHUNK)]
        return torch.cat(parts).reshape(symbols.shape[0], *self.shape) if parts else torch.empty(0, *self.shape)
