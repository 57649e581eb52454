"""The ``block-ntc`` codec: NTC applied to blocks of B i.i.d. realizations (paper Sec. VI-A).

A block is B realizations joined into one: vectors (and scalars) concatenated into a vector
of B*m components; images (C, H, W) stitched into a g x g grid (C, gH, gW), B = g*g (``layout =
"grid"``, 2 x 2 for B = 4, as the paper does) or stacked as channels (B*C, H, W) (``layout =
"channels"``: a step costs a quarter as much, but the same transforms code the stack worse;
the README has the measured table). An ordinary :class:`~.codec.NTC` is trained and run on the
:class:`BlockSource` of blocks. Rate and distortion are reported per realization.

With scalar rounding of the latents, NTC on an i.i.d. Gaussian cannot beat entropy-coded
scalar quantization, block or not (the latent quantizer is still scalar); blocks can only
help where realizations share structure a larger transform can exploit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from rdbench.entropy_coding import read_varint, varint
from rdbench.interfaces import Bits, Codec, Source, Split
from rdbench.targets import Target
from rdbench_plugins._holdout import held_out
from rdbench_plugins.ntc import LAYOUTS
from rdbench_plugins.ntc.codec import NTC


class BlockSource(Source):
    """Blocks of ``block_size`` realizations of ``base`` as the realizations of a new source;
    images in ``layout`` (:data:`LAYOUTS`).

    Rates and distortions of a block are sums over its realizations, so
    R_block(D) = B R(D / B), D_max,block = B D_max, and the slope |dR/dD| is unchanged.
    """

    def __init__(self, base: Source, block_size: int, layout: str = "grid") -> None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.base, self.block_size, self.layout = base, int(block_size), layout
        self.distortion = base.distortion
        shape = tuple(base.shape)
        self.grid = 0
        if len(shape) != 3:
            self.shape = (block_size * math.prod(shape),)
        elif layout == "channels":
            self.shape = (block_size * shape[0], shape[1], shape[2])
        else:
            g = math.isqrt(block_size)
            if g * g != block_size:
                raise ValueError(f"image blocks are g x g grids: block_size must be a square, got {block_size}")
            self.grid = g
            self.shape = (shape[0], g * shape[1], g * shape[2])

    def stitch(self, x: np.ndarray) -> np.ndarray:
        """(n * B, *base.shape) realizations -> (n, *shape) blocks."""
        n = x.shape[0] // self.block_size
        if not self.grid:  # concatenated vectors or stacked channels: consecutive realizations
            return x.reshape(n, *self.shape)
        g, (c, h, w) = self.grid, self.base.shape
        return x.reshape(n, g, g, c, h, w).transpose(0, 3, 1, 4, 2, 5).reshape(n, *self.shape)

    def unstitch(self, blocks: np.ndarray) -> np.ndarray:
        """(n, *shape) blocks -> (n * B, *base.shape) realizations."""
        n = blocks.shape[0]
        if not self.grid:
            return blocks.reshape(n * self.block_size, *self.base.shape)
        g, (c, h, w) = self.grid, self.base.shape
        return blocks.reshape(n, c, g, h, g, w).transpose(0, 2, 4, 1, 3, 5).reshape(n * self.block_size, c, h, w)

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        return self.stitch(self.base.sample(n * self.block_size, seed, split))

    def rate_distortion(self, distortion: float) -> float | None:
        rate = self.base.rate_distortion(distortion / self.block_size)
        return None if rate is None else self.block_size * rate

    @property
    def d_max(self) -> float | None:
        d = self.base.d_max
        return None if d is None else self.block_size * d

    def slope(self, distortion: float) -> float | None:
        """dR/dD of the base source at D / B (bits per unit distortion), or None if unknown."""
        slope = getattr(self.base, "slope", None)
        return slope(distortion / self.block_size) if callable(slope) else None


class _BlockTrainer(NTC):
    """NTC on a :class:`BlockSource` whose training and validation blocks, from a finite
    dataset, are drawn from disjoint pools of its images (:func:`~rdbench_plugins._holdout.held_out`
    applied to the realizations, not the blocks), so the pools keep many distinct blocks each."""

    def _data(self, source: Source, seed: int) -> tuple[np.ndarray, np.ndarray]:
        assert isinstance(source, BlockSource)
        b, base = source.block_size, source.base
        if base.split_size("train") is None:
            return super()._data(source, seed)
        train, val = held_out(base, self.n_train * b, self.n_val * b, seed)
        rng = np.random.default_rng([seed, b])
        return tuple(
            source.stitch(pool[rng.integers(len(pool), size=n * b)])
            for pool, n in ((train, self.n_train), (val, self.n_val))
        )


class BlockNTC(Codec):
    """NTC on blocks of ``block_size`` realizations; other settings as :class:`~.codec.NTC`.
    n_train and n_val count blocks; batch_size counts realizations (a step trains on
    batch_size // B blocks), so a step sees as many realizations as an ``ntc`` step and costs
    about as much. One stream per evaluation set: a varint with the number of zero
    realizations padding the last block, then the NTC message."""

    coding = "stream"

    def __init__(self, block_size: int = 4, batch_size: int = 256, layout: str = "grid", **settings: Any) -> None:
        self.block_size, self.layout = block_size, layout
        self.ntc = _BlockTrainer(batch_size=max(1, int(batch_size) // block_size), **settings)
        self.blocks: BlockSource | None = None
        self.stats: dict[str, Any] = {}

    def fit(self, source: Source, target: Target, seed: int) -> None:
        """Train NTC on blocks for the per-realization ``target`` (B times its distortion per block)."""
        self.blocks = BlockSource(source, self.block_size, self.layout)
        self.ntc.fit(self.blocks, self._block_target(target), seed)

    def fit_curve(self, source: Source, targets: Sequence[Target], seed: int) -> Iterator[Target]:
        """:meth:`.codec.NTC.fit_curve` on blocks, yielding each per-realization target once fitted."""
        self.blocks = BlockSource(source, self.block_size, self.layout)
        originals = {self._block_target(target): target for target in targets}
        for block_target in self.ntc.fit_curve(self.blocks, list(originals), seed):
            yield originals[block_target]

    def _block_target(self, target: Target) -> Target:
        """The target per block: B times the per-realization distortion (slopes unchanged)."""
        distortion = None if target.distortion is None else self.block_size * target.distortion
        return dataclasses.replace(target, distortion=distortion)

    def _fitted(self) -> BlockSource:
        if self.blocks is None:
            raise RuntimeError("block-NTC: call fit before encode or decode")
        return self.blocks

    def _pad(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        pad = -x.shape[0] % self.block_size
        return np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=x.dtype)]), pad

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """What decode(encode(x)) returns, without entropy coding."""
        padded, pad = self._pad(np.asarray(x))
        blocks = self._fitted()
        return blocks.unstitch(self.ntc.reconstruct(blocks.stitch(padded)))[: len(padded) - pad]

    def encode(self, x: np.ndarray) -> bytes:
        """(n, *shape) realizations -> one message (the last block padded with zeros)."""
        blocks = self._fitted()
        x = np.asarray(x)
        if x.shape[1:] != tuple(blocks.base.shape):
            raise ValueError(f"block-NTC was fitted on realizations of shape {blocks.base.shape}, got {x.shape}")
        padded, pad = self._pad(x)
        message = varint(pad) + self.ntc.encode(blocks.stitch(padded))
        self.stats = dataclasses.replace(
            self.ntc.stats, realizations=x.shape[0], real_bits=Bits.length(message)
        ).details()
        return message

    def decode(self, message: bytes | Bits) -> np.ndarray:
        """The (n, *shape) reconstructions; ValueError if the message is corrupted."""
        blocks = self._fitted()
        data = message.data if isinstance(message, Bits) and message.nbits % 8 == 0 else message
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError("a block-NTC message is whole bytes")
        pad, pos = read_varint(bytes(data), 0)
        if pad >= self.block_size:
            raise ValueError(f"corrupted message: {pad} padding realizations in blocks of {self.block_size}")
        realizations = blocks.unstitch(self.ntc.decode(bytes(data[pos:])))
        if realizations.shape[0] < pad:
            raise ValueError("corrupted message: fewer realizations than padding")
        return realizations[: realizations.shape[0] - pad]

    def details(self) -> dict[str, Any]:
        """NTC's training details, with real and ideal bits per realization and the block size."""
        return {**self.ntc.details(), **self.stats, "block_size": self.block_size, "layout": self.blocks.layout}
