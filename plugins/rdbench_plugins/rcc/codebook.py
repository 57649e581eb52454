"""The common randomness of RCC: candidates Y_i ~ Q*_Y and weights W_i (paper eq. 28), in chunks.

Every message n (the n-th realization a fitted codec encodes, counted alike by its decoder)
gets its own codebook, drawn from (seed, n): independent realizations are coded with
independent randomness, so their distortions average to the channel's. Indices are
i = 0, 1, ... (the paper's i + 1), below a limit (ORC's N, a finite PFR's N, or the candidate
cap of exact PFR). Chunk c of a message holds i in [start_c, start_c + size_c): sizes double
from FIRST_CHUNK up to the largest chunk size, so a search of length L generates O(L)
candidates. A chunk's candidates come from the random stream (seed, n, c, candidates) and its
Exp(1) increments X_i from (seed, n, c, weights), so the decoder of index K regenerates the one
chunk holding K (O(K) work). The weights are cumulative, W_i = sum_{j <= i} w_j X_j with
w_j = 1 (PFR: Poisson arrival times) or N / (N - j) (ORC), built in chunk order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rdbench.distortion import SquaredError
from rdbench_plugins.rcc import METHODS
from rdbench_plugins.rcc.channels import Channel

Method = Literal["pfr", "orc"]
#: Size of a message's first chunk; each next one doubles, up to the codebook's chunk_size.
FIRST_CHUNK = 256
#: Separates the codebook's random streams from other uses of the cell seed.
_STREAM = 0x524343
_CANDIDATES, _WEIGHTS = 0, 1


@dataclass(frozen=True)
class Chunk:
    """Candidates start .. start + n - 1 of one message, with their weights.

    y: (n, dim) float32 candidates. log_w: (n,) float32, ln(W_i) / |beta*|, nondecreasing.
    base: (n,) float32, log_w + ||y_i||^2 for squared error (so that
    d(x, y_i) + log_w_i = base_i - 2 x.y_i + ||x||^2), else log_w.
    """

    start: int
    y: np.ndarray
    log_w: np.ndarray
    base: np.ndarray


class Codebook:
    """Candidates and weights of one codec (one channel, one seed), message by message.

    method: ``pfr`` or ``orc`` (eq. 28; ORC's N is ``limit``). limit: indices per message.
    chunk_size: the largest chunk. Weights need beta* < 0.
    """

    def __init__(self, channel: Channel, seed: int, method: Method, limit: int, chunk_size: int) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not channel.beta <= 0:
            raise ValueError(f"a codebook needs beta* <= 0, got {channel.beta!r}")
        self.channel = channel
        self.seed = int(seed)
        self.method = method
        self.limit = int(limit)
        self.chunk_size = int(chunk_size)
        self.squared_error = isinstance(channel.distortion, SquaredError)
        self.generated = 0  #: chunks of candidates generated so far
        starts, size = [0], min(FIRST_CHUNK, self.chunk_size)
        while starts[-1] + size < self.limit:
            starts.append(starts[-1] + size)
            size = min(2 * size, self.chunk_size)
        self._starts = np.array([*starts, self.limit], dtype=np.int64)  # chunk c: [starts[c], starts[c + 1])

    @property
    def n_chunks(self) -> int:
        return len(self._starts) - 1

    def locate(self, index: int) -> tuple[int, int]:
        """(chunk, row) of an index in 0 .. limit - 1."""
        if not 0 <= index < self.limit:
            raise IndexError(f"index {index} outside 0..{self.limit - 1}")
        c = int(np.searchsorted(self._starts, index, side="right")) - 1
        return c, index - int(self._starts[c])

    def _rng(self, message: int, c: int, kind: int) -> np.random.Generator:
        return np.random.Generator(np.random.SFC64(np.random.SeedSequence([self.seed, _STREAM, message, c, kind])))

    def candidates(self, message: int, c: int) -> np.ndarray:
        """Chunk c of message n: its candidates, (size_c, dim) float32, from the seed."""
        self.generated += 1
        size = int(self._starts[c + 1] - self._starts[c])
        return self.channel.sample(self._rng(message, c, _CANDIDATES), size)

    def chunks(self, message: int) -> Iterator[Chunk]:
        """The chunks of message n in order, with their weights (the encoder's view)."""
        w_end, scale = 0.0, -1.0 / self.channel.beta
        for c in range(self.n_chunks):
            y = self.candidates(message, c)
            start, n = int(self._starts[c]), len(y)
            increments = self._rng(message, c, _WEIGHTS).standard_exponential(n)
            if self.method == "orc":
                increments *= self.limit / (self.limit - np.arange(start, start + n, dtype=np.float64))
            w = np.cumsum(increments)
            w += w_end
            w_end = float(w[-1])
            log_w = (np.log(w) * scale).astype(np.float32)
            base = log_w + np.einsum("ij,ij->i", y, y) if self.squared_error else log_w
            yield Chunk(start, y, log_w, base)
