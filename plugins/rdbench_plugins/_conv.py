"""The convolutional stacks the built-in neural plugins share for image sources (``ntc``,
``sandwich-upper``). Importing this module imports torch.

Images are (N, C, H, W) tensors. :class:`ConvDown` zero-pads H and W up to multiples of 4
and applies two stride-2 5x5 convolutions and a 3x3 one, so a map comes out at
(N, out, ceil(H/4), ceil(W/4)); :class:`ConvUp` mirrors it (a 3x3 convolution and two
stride-2 5x5 transposed convolutions, x4 in each direction) and crops back to (H, W). GELU
between the layers, none after the last. Both are :class:`torch.nn.Sequential`, so a module
that holds one as ``net`` has parameters ``net.0``, ``net.2`` and ``net.4``. Both may train
in mixed precision (:mod:`rdbench_plugins._precision`): ConvUp's layers and all but
ConvDown's last in bfloat16; ConvDown's last (latents or statistics) in float32.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rdbench_plugins._precision import MixedPrecision

#: Each of ConvDown / ConvUp changes H and W by this factor (two stride-2 stages).
FACTOR = 4


def latent_size(size: tuple[int, int]) -> tuple[int, int]:
    """(ceil(H/4), ceil(W/4)): the spatial size ConvDown maps an (H, W) image to."""
    return math.ceil(size[0] / FACTOR), math.ceil(size[1] / FACTOR)


class _Stack(MixedPrecision, nn.Sequential):
    """A sequence of layers that may train in mixed precision; the last in float32 where
    :attr:`FLOAT32_LAST`. The output is float32."""

    FLOAT32_LAST = False

    def run(self, x: torch.Tensor) -> torch.Tensor:
        layers = list(self)
        last = layers.pop() if self.FLOAT32_LAST else None
        with self.mixed(x.device):
            for layer in layers:
                x = layer(x)
        x = x.float()
        return x if last is None else last(x)


class ConvDown(_Stack):
    """(N, C_in, H, W) -> (N, C_out, ceil(H/4), ceil(W/4)); ``hidden`` channels in between.

    The input is zero-padded (bottom and right) to multiples of 4 first.
    """

    FLOAT32_LAST = True  # latents (NTC) and q(z|x)'s statistics (sandwich-upper) in float32

    def __init__(self, channels_in: int, hidden: int, channels_out: int) -> None:
        super().__init__(
            nn.Conv2d(channels_in, hidden, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(hidden, channels_out, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.run(F.pad(x, (0, -w % FACTOR, 0, -h % FACTOR)))


class ConvUp(_Stack):
    """(N, C_in, h, w) -> (N, C_out, H, W) with H, W = ``size``: the map is upsampled to
    (4h, 4w) and cropped to (H, W) (take h, w = ceil(H/4), ceil(W/4)); ``hidden`` channels
    in between."""

    def __init__(self, channels_in: int, hidden: int, channels_out: int, size: tuple[int, int]) -> None:
        super().__init__(
            nn.Conv2d(channels_in, hidden, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(hidden, hidden, 5, stride=2, padding=2, output_padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(hidden, channels_out, 5, stride=2, padding=2, output_padding=1),
        )
        self.size = (int(size[0]), int(size[1]))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        return self.run(y)[..., :h, :w]
