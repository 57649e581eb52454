"""NTC's analysis and synthesis transforms, chosen by the shape of a realization.

Vector sources (shape () or (m,), or anything not 3-d, flattened): a linear map plus an MLP
correction. Image sources (shape (C, H, W)): convolutions, two stride-2 stages down and up
(the stacks of :mod:`rdbench_plugins._conv`, shared with ``sandwich-upper``).

Both scale the latent by a fixed ``step`` (a distortion-dependent initial quantization step,
in source units): analysis returns latents in units of the step, synthesis takes them back,
so integer rounding starts out as a uniform quantizer of that step and training refines it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rdbench_plugins._conv import ConvDown, ConvUp, latent_size
from rdbench_plugins._networks import LinearPlusMLP


class VectorAnalysis(nn.Module):
    """(N, m) realizations -> (N, k) latents in units of ``step``."""

    def __init__(self, m: int, k: int, hidden: int, step: float) -> None:
        super().__init__()
        self.net = LinearPlusMLP(m, k, hidden)
        self.register_buffer("step", torch.tensor(float(step)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.step


class VectorSynthesis(nn.Module):
    """(N, k) latents in units of ``step`` -> (N, m) reconstructions."""

    def __init__(self, k: int, m: int, hidden: int, step: float) -> None:
        super().__init__()
        self.net = LinearPlusMLP(k, m, hidden)
        self.register_buffer("step", torch.tensor(float(step)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y * self.step)


class ConvAnalysis(nn.Module):
    """(N, C, H, W) images -> (N, L, ceil(H/4), ceil(W/4)) latents in units of ``step``.

    The shared :class:`~rdbench_plugins._conv.ConvDown` stack (images zero-padded to
    multiples of 4 first).
    """

    def __init__(self, channels: int, latent_channels: int, hidden: int, step: float) -> None:
        super().__init__()
        self.net = ConvDown(channels, hidden, latent_channels)
        self.register_buffer("step", torch.tensor(float(step)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) / self.step


class ConvSynthesis(nn.Module):
    """(N, L, h, w) latents in units of ``step`` -> (N, C, H, W) images (cropped back): the
    shared :class:`~rdbench_plugins._conv.ConvUp` stack."""

    def __init__(self, latent_channels: int, channels: int, hidden: int, step: float, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.net = ConvUp(latent_channels, hidden, channels, size)
        self.register_buffer("step", torch.tensor(float(step)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y * self.step)


def build_transforms(
    shape: tuple[int, ...], latent: int | None, hidden: int | None, step: float
) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """(analysis, synthesis, latent shape of one realization) for realizations of ``shape``.

    latent: latent dimensions (vectors; default m) or latent channels (images; default 16).
    hidden: MLP width (vectors; default max(64, 2m)) or conv channels (images; default 32).
    """
    if len(shape) == 3:
        c, h, w = shape
        latent = latent or 16
        hidden = hidden or 32
        return (
            ConvAnalysis(c, latent, hidden, step),
            ConvSynthesis(latent, c, hidden, step, (h, w)),
            (latent, *latent_size((h, w))),
        )
    m = math.prod(shape)
    latent = latent or m
    hidden = hidden or max(64, 2 * m)
    return VectorAnalysis(m, latent, hidden, step), VectorSynthesis(latent, m, hidden, step), (latent,)
