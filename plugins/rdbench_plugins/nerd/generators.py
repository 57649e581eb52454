"""Generators G_theta: Z ~ N(0, I_latent) -> reproductions y of the source's shape (paper App. C).

* ``fc`` (vector sources, shape (m,), and scalar ones as m = 1): Linear(latent, h) - ReLU - Linear(h, h) - ReLU -
  Linear(h, m), with h = m (two hidden layers of the source's dimension).
* ``conv`` (image sources, shape (C, H, W)): DCGAN-style. Linear(128, 8 c_d h0 w0) - ReLU,
  reshaped to 8 c_d x h0 x w0 (h0 = ceil(H / 16), w0 = ceil(W / 16): 2 x 2 for 32 x 32), four
  transposed convolutions (kernel 4, stride 2) halving the channels 8 c_d -> 4 c_d -> 2 c_d ->
  c_d -> C with ReLU between them, a sigmoid output in [0, 1], cropped to H x W.

A generator is described by a JSON-serializable config (:func:`generator_config`), so it can
be rebuilt from the config and its weights (:mod:`.storage`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

#: Latent dimension of the convolutional generator (paper App. C).
CONV_LATENT_DIM = 128
#: Channel parameter c_d of the convolutional generator (paper App. C, B).
CONV_CHANNELS = 32


def generator_config(
    shape: Sequence[int], latent_dim: int | None = None, hidden: int | None = None, channels: int | None = None
) -> dict[str, Any]:
    """The config of the generator for realizations of ``shape``: ``fc`` for () and (m,), ``conv`` for (C, H, W).

    latent_dim: defaults to m (fc) or 128 (conv). hidden: fc width, defaults to m.
    channels: c_d of the conv generator; defaults to 32 (the paper's) for 32 x 32 images and
    scales with the image side below that (c_d = side, at least 8: 8 for 8 x 8 digits), where
    a 32-wide generator is mostly cropped away and costs 16x the arithmetic.
    """
    shape = [int(s) for s in shape]
    if len(shape) <= 1:
        m = math.prod(shape)
        return {"kind": "fc", "shape": shape, "latent_dim": int(latent_dim or m), "hidden": int(hidden or m)}
    if len(shape) == 3:
        return {
            "kind": "conv",
            "shape": shape,
            "latent_dim": int(latent_dim or CONV_LATENT_DIM),
            "channels": int(channels or min(CONV_CHANNELS, max(8, max(shape[1:])))),
        }
    raise ValueError(f"nerd: no generator for realizations of shape {tuple(shape)}; expected (), (m,) or (C, H, W)")


class FCGenerator(nn.Module):
    """z (B, latent_dim) -> y (B, *shape), shape (m,) or () (a scalar source, m = 1)."""

    #: Hidden biases of :meth:`init_affine`, in standard deviations of the unit's input.
    RELU_MARGIN = 3.0

    def __init__(self, shape: Sequence[int], latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        m = math.prod(self.shape)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, m)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)

    @torch.no_grad()
    def init_affine(self, mean: torch.Tensor, factor: torch.Tensor) -> None:
        """Start as the affine map G(z) = mean + factor[:, :r] z[:r], r = min(m, hidden, latent).

        mean: (m,); factor: (m, m), columns in decreasing order of importance (e.g. scaled
        principal axes of the source). Both hidden layers copy their first r inputs, offset
        by :attr:`RELU_MARGIN` so every ReLU starts in its linear regime (it clips only
        where a latent coordinate is below -3). Starting with every direction switched on
        avoids the slow escape of products of small weight matrices from zero; training
        then shrinks the directions the optimal Q_Y does not need.
        """
        first, second, out = self.net[0], self.net[2], self.net[4]
        hidden, latent = first.weight.shape
        r = min(out.out_features, hidden, latent)
        first.weight.copy_(torch.eye(hidden, latent))
        first.bias.fill_(self.RELU_MARGIN)
        second.weight.copy_(torch.eye(hidden))
        second.bias.zero_()
        out.weight.zero_()
        out.weight[:, :r] = factor[:, :r]
        out.bias.copy_(mean - out.weight.sum(1) * self.RELU_MARGIN)


    @torch.no_grad()
    def shrink(self, factor: float, center: torch.Tensor) -> None:
        """Make the output distribution center + factor (G(z) - center); center (m,)."""
        out = self.net[4]
        out.weight.mul_(factor)
        out.bias.mul_(factor).add_((1.0 - factor) * center)


class ConvGenerator(nn.Module):
    """z (B, latent_dim) -> y (B, C, H, W) in [0, 1].

    Beyond DCGAN, a per-pixel ``offset`` is added before the sigmoid: :meth:`init_mean` sets
    it to the logit of the source's mean image, so that training starts from reproductions
    near the mean (D near D_max) rather than from grey images farther than that.
    """

    def __init__(self, shape: Sequence[int], latent_dim: int, channels: int) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = (c, h, w)
        self.base = (8 * channels, math.ceil(h / 16), math.ceil(w / 16))
        self.project = nn.Sequential(nn.Linear(latent_dim, math.prod(self.base)), nn.ReLU())
        widths = [8 * channels, 4 * channels, 2 * channels, channels]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels, c, 4, 2, 1)]
        self.upsample = nn.Sequential(*layers)
        self.offset = nn.Parameter(torch.zeros(c, h, w))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.upsample(self.project(z).view(-1, *self.base))
        _, h, w = self.shape
        return torch.sigmoid(y[:, :, :h, :w] + self.offset)

    #: Pixel values are clipped to [PIXEL_CLIP, 1 - PIXEL_CLIP] before the logit of the mean image.
    PIXEL_CLIP = 0.01

    @torch.no_grad()
    def init_mean(self, mean: torch.Tensor, factor: float) -> None:
        """Start near the mean image (C, H, W) in [0, 1], the variation scaled by ``factor``."""
        self.offset.copy_(torch.logit(mean.clamp(self.PIXEL_CLIP, 1 - self.PIXEL_CLIP)))
        last = self.upsample[-1]
        last.weight.mul_(factor)
        last.bias.zero_()


def build_generator(config: dict[str, Any]) -> nn.Module:
    """A freshly initialized generator for ``config`` (from :func:`generator_config`)."""
    kind = config.get("kind")
    if kind == "fc":
        return FCGenerator(config["shape"], config["latent_dim"], config["hidden"])
    if kind == "conv":
        return ConvGenerator(config["shape"], config["latent_dim"], config["channels"])
    raise ValueError(f"nerd: unknown generator kind {kind!r} (expected 'fc' or 'conv')")
