"""Generators G_theta: Z ~ N(0, I_latent) -> reproductions y of the source's shape (paper App. C).

* ``fc`` (vector sources, shape (m,), and scalar ones as m = 1): Linear(latent, h) - ReLU - Linear(h, h) - ReLU -
  Linear(h, m), with h = m (two hidden layers of the source's dimension).
* ``conv`` (image sources, shape (C, H, W)): DCGAN-style. Linear(128, 8 c_d 2 2) - ReLU,
  reshaped to 8 c_d x 2 x 2, four transposed convolutions (kernel 4, stride 2) halving the
  channels 8 c_d -> 4 c_d -> 2 c_d -> c_d -> C with ReLU between them, a sigmoid output in
  [0, 1] (32 x 32; smaller images need fewer stages, larger ones a bigger first map), plus a
  linear skip from z that starts it as a Gaussian (:class:`ConvGenerator`).

A generator is described by a JSON-serializable config (:func:`generator_config`), so it can
be rebuilt from the config and its weights (:mod:`.storage`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rdbench_plugins._precision import MixedPrecision

#: Latent dimension of the convolutional generator (paper App. C).
CONV_LATENT_DIM = 128
#: Channel parameter c_d of the convolutional generator (paper App. C, B).
CONV_CHANNELS = 32


def generator_config(
    shape: Sequence[int], latent_dim: int | None = None, hidden: int | None = None, channels: int | None = None
) -> dict[str, Any]:
    """The config of the generator for realizations of ``shape``: ``fc`` for () and (m,), ``conv`` for (C, H, W).

    latent_dim: defaults to m (fc) or 128 (conv). hidden: fc width, defaults to m.
    channels: c_d of the conv generator; defaults to 32 (the paper's; NERD's budgets choose it
    by image size, :data:`rdbench_plugins.budgets.NERD_BUDGETS`).
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
            "channels": int(channels or CONV_CHANNELS),
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

    def for_sampling(self) -> nn.Module:
        """The module to sample with (this one: dense layers are already fast)."""
        return self

    @torch.no_grad()
    def shrink(self, factor: float, center: torch.Tensor) -> None:
        """Make the output distribution center + factor (G(z) - center); center (m,)."""
        out = self.net[4]
        out.weight.mul_(factor)
        out.bias.mul_(factor).add_((1.0 - factor) * center)


class ConvGenerator(MixedPrecision, nn.Module):
    """z (B, latent_dim) -> y (B, C, H, W) in [0, 1]: sigmoid(DCGAN(z) + skip(z) + offset).

    DCGAN part: Linear(latent, 2^(s-1) c_d h0 w0) - ReLU, reshaped to 2^(s-1) c_d x h0 x w0,
    then s transposed convolutions (kernel 4, stride 2) halving the channels down to c_d and
    then to C, ReLU between them, cropped to H x W. s = :func:`conv_stages` (4 for 32 x 32,
    as the paper's; 2 for 8 x 8), h0 = ceil(H / 2^s), w0 = ceil(W / 2^s).

    Beyond DCGAN, a linear ``skip`` from z to the pre-sigmoid pixels and a per-pixel
    ``offset``: :meth:`init_affine` starts the generator as (nearly) the Gaussian with the
    source's mean and principal axes, as the FC generator does, so training refines a
    reasonable Q_Y instead of growing one from a single image (much slower: on 8 x 8 digits
    the mean-image start did not reach D/D_max = 0.4 in 600 steps).

    The DCGAN part may train in mixed precision (:mod:`rdbench_plugins._precision`).
    """

    def __init__(self, shape: Sequence[int], latent_dim: int, channels: int) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = (c, h, w)
        stages = conv_stages(h, w)
        self.base = (2 ** (stages - 1) * channels, math.ceil(h / 2**stages), math.ceil(w / 2**stages))
        self.project = nn.Sequential(nn.Linear(latent_dim, math.prod(self.base)), nn.ReLU())
        widths = [2**i * channels for i in reversed(range(stages))] + [c]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU()]
        self.upsample = nn.Sequential(*layers[:-1])
        self.skip = nn.Linear(latent_dim, c * h * w, bias=False)
        nn.init.zeros_(self.skip.weight)
        self.offset = nn.Parameter(torch.zeros(c, h, w))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with self.mixed(z.device):  # the DCGAN part; the skip, offset and sigmoid stay in float32
            y = self.upsample(self.project(z).view(-1, *self.base))
        return self.finish(y.float(), z)

    def finish(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The output from the DCGAN part's y (B, C, >= H, >= W) and z: crop, add skip and offset, sigmoid."""
        _, h, w = self.shape
        return torch.sigmoid(y[:, :, :h, :w] + self.skip(z).view(-1, *self.shape) + self.offset)

    @torch.no_grad()
    def for_sampling(self) -> nn.Module:
        """The same function, for inference only, faster on a CPU: see :class:`SamplingConvGenerator`."""
        return SamplingConvGenerator(self)

    #: Pixel values are clipped to [PIXEL_CLIP, 1 - PIXEL_CLIP] before the logit of the mean image.
    PIXEL_CLIP = 0.01

    @torch.no_grad()
    def init_affine(self, mean: torch.Tensor, factor: torch.Tensor) -> None:
        """Start near mean + factor[:, :r] z[:r], r = min(m, latent): the sigmoid linearized
        about the mean image. mean: (m,) in [0, 1], m = C H W; factor: (m, m) as
        :meth:`FCGenerator.init_affine`. The DCGAN part starts at zero output (last layer
        zeroed) and learns what the Gaussian misses."""
        p = mean.clamp(self.PIXEL_CLIP, 1 - self.PIXEL_CLIP)
        self.offset.copy_(torch.logit(p).view(self.shape))
        r = min(factor.shape[1], self.skip.in_features)
        self.skip.weight.zero_()
        self.skip.weight[:, :r] = factor[:, :r] / (p * (1 - p))[:, None]
        last = self.upsample[-1]
        last.weight.zero_()
        last.bias.zero_()


class SamplingConvGenerator(nn.Module):
    """A trained :class:`ConvGenerator` rewritten for sampling (same outputs up to float rounding).

    Each leading transposed convolution whose dense matrix has at most
    :attr:`DENSE_MAX_ENTRIES` entries becomes a Linear layer (its matrix is the convolution
    applied to the identity basis), the remaining convolutions run in channels-last layout,
    those with at most :attr:`POLYPHASE_MAX_CHANNELS` output channels (the last, to the
    image's) as a plain convolution to their four output phases (:class:`PolyphaseTranspose`),
    and the ReLUs work in place. PyTorch's CPU kernels waste most of their time on
    convolutions over maps of a few pixels and on transposed convolutions to few channels
    (``benchmarks/rcc_images.py`` prints the samples per second of each form).
    """

    #: Largest dense matrix (entries; 8 MiB of float32) a transposed convolution becomes.
    DENSE_MAX_ENTRIES = 2**21
    #: Transposed convolutions to at most this many channels become :class:`PolyphaseTranspose`.
    POLYPHASE_MAX_CHANNELS = 4

    def __init__(self, generator: ConvGenerator) -> None:
        super().__init__()
        self.generator = generator
        convs, shape = [m for m in generator.upsample if isinstance(m, nn.ConvTranspose2d)], generator.base
        head: list[nn.Module] = [generator.project[0], nn.ReLU(inplace=True)]
        while convs and math.prod(shape) * math.prod(_output_shape(convs[0], shape)) <= self.DENSE_MAX_ENTRIES:
            conv, convs = convs[0], convs[1:]
            head += [_dense(conv, shape)] + ([nn.ReLU(inplace=True)] if convs else [])
            shape = _output_shape(conv, shape)
        tail: list[nn.Module] = []
        for i, conv in enumerate(convs):
            tail.append(PolyphaseTranspose(conv) if conv.out_channels <= self.POLYPHASE_MAX_CHANNELS else conv)
            tail += [nn.ReLU(inplace=True)] if i < len(convs) - 1 else []
        self.head = nn.Sequential(*head)
        self.middle = shape
        self.tail = nn.Sequential(*tail)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.head(z).view(-1, *self.middle)
        if len(self.tail):
            y = self.tail(y.contiguous(memory_format=torch.channels_last))
        return self.generator.finish(y, z)


class PolyphaseTranspose(nn.Module):
    """A ConvTranspose2d(kernel 4, stride 2, padding 1) as a 3 x 3 convolution (padding 1) to
    its four output phases, interleaved by a pixel shuffle: the same function.

    Output pixel 2m + a (per axis) takes input pixels m - 1 and m with kernel taps 3 and 1
    (a = 0), or m and m + 1 with taps 2 and 0 (a = 1): a 3-tap window around m.
    """

    #: Phase a -> {window position u (input pixel m - 1 + u): kernel tap}.
    TAPS = {0: {0: 3, 1: 1}, 1: {1: 2, 2: 0}}

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if (conv.kernel_size, conv.stride, conv.padding, conv.output_padding) != ((4, 4), (2, 2), (1, 1), (0, 0)):
            raise ValueError("PolyphaseTranspose takes a transposed convolution of kernel 4, stride 2, padding 1")
        w = conv.weight.detach()  # (in, out, 4, 4)
        weight = w.new_zeros(conv.out_channels, 2, 2, conv.in_channels, 3, 3)  # (out, a, b, in, u, v)
        for a, rows in self.TAPS.items():
            for b, cols in self.TAPS.items():
                for u, ku in rows.items():
                    for v, kv in cols.items():
                        weight[:, a, b, :, u, v] = w[:, :, ku, kv].T
        self.register_buffer("weight", weight.reshape(4 * conv.out_channels, conv.in_channels, 3, 3))
        self.register_buffer("bias", conv.bias.detach().repeat_interleave(4))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(y, self.weight, self.bias, padding=1), 2)


def _output_shape(conv: nn.ConvTranspose2d, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    _, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return conv.out_channels, (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw


@torch.no_grad()
def _dense(conv: nn.ConvTranspose2d, shape: tuple[int, int, int]) -> nn.Linear:
    """The Linear layer on flattened (C, H, W) maps that equals ``conv`` on maps of ``shape``."""
    n_in = math.prod(shape)
    basis = torch.eye(n_in, device=conv.weight.device).view(n_in, *shape)
    columns = (conv(basis) - conv.bias.view(1, -1, 1, 1)).reshape(n_in, -1)  # row i: the image of unit vector i
    out_channels, h, w = _output_shape(conv, shape)
    dense = nn.Linear(n_in, out_channels * h * w).to(conv.weight.device)
    dense.weight.copy_(columns.T)
    dense.bias.copy_(conv.bias.repeat_interleave(h * w))
    return dense


def conv_stages(h: int, w: int) -> int:
    """Stride-2 stages of the conv generator: enough to grow a 2 x 2 map to the image, 1 to 4."""
    return min(4, max(1, math.ceil(math.log2(max(h, w) / 2))))


def build_generator(config: dict[str, Any]) -> nn.Module:
    """A freshly initialized generator for ``config`` (from :func:`generator_config`)."""
    kind = config.get("kind")
    if kind == "fc":
        return FCGenerator(config["shape"], config["latent_dim"], config["hidden"])
    if kind == "conv":
        return ConvGenerator(config["shape"], config["latent_dim"], config["channels"])
    raise ValueError(f"nerd: unknown generator kind {kind!r} (expected 'fc' or 'conv')")
