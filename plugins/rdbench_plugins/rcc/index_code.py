"""The codes for the selected index (paper Algorithms 2 and 3).

:class:`IndexCode`: K (1-based, the paper's) is Huffman-coded for the Zipf-like law
q(k) proportional to k^-(1 + 1 / (C + log2(e) / e + 1)), C the rate parameter in bits, with which
PFR's expected code length is at most C + log2(C + 1) + 5 bits (Li and El Gamal 2018). The
Huffman table covers k = 1 .. 2**table_bits; beyond it the entropy-coding layer's escape
(Elias-gamma) codes the rest, the escape's probability being the Zipf tail mass.

:class:`FittedIndexCode`: a law fitted to the indices the search selects for training
realizations (a pilot). The Zipf law is the one that holds for every channel, and it pays
for that: its -log2 zeta(s) term alone costs about log2(C + 2) bits. The selected K of a
fixed channel concentrates around 2^C (its log2 K spreads over a few bits), so a law over the
octave b = floor(log2 K) (Krichevsky-Trofimov counts: unseen octaves stay codable), uniform
within each octave, costs about E[log2 K] + H(octave) bits.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import zeta

from rdbench.entropy_coding import PrefixCode
from rdbench.interfaces import Bits

#: log2(e) / e: the constant in the Zipf exponent.
_ZIPF_CONSTANT = math.log2(math.e) / math.e
#: Default table: 2**(ceil(C) + TABLE_MARGIN_BITS) entries, within [2**MIN_TABLE_BITS, 2**MAX_TABLE_BITS].
TABLE_MARGIN_BITS, MIN_TABLE_BITS, MAX_TABLE_BITS = 12, 12, 20


def zipf_exponent(rate_bits: float) -> float:
    """s = 1 + 1 / (C + log2(e) / e + 1) for a rate parameter C >= 0 (bits)."""
    return 1.0 + 1.0 / (max(float(rate_bits), 0.0) + _ZIPF_CONSTANT + 1.0)


def default_table_bits(rate_bits: float) -> int:
    return min(max(math.ceil(max(rate_bits, 0.0)) + TABLE_MARGIN_BITS, MIN_TABLE_BITS), MAX_TABLE_BITS)


class _TableCode:
    """Encode, decode and ideal lengths of one index with a :class:`PrefixCode` ``_code``."""

    _code: PrefixCode

    def encode(self, index: int) -> Bits:
        return self._code.encode([index])

    def decode(self, message: Bits) -> int:
        """The index a one-index message holds; ValueError if it is not one."""
        return int(self._code.decode(message, count=1)[0])

    def ideal_bits(self, index: int) -> float:
        """-log2 of the code's law at ``index`` (escapes: plus their Elias-gamma bits)."""
        return self._code.ideal_bits([index])


class IndexCode(_TableCode):
    """Prefix code of an index K >= 0 (0-based: the paper's K - 1) for rate parameter C bits."""

    def __init__(self, rate_bits: float, table_bits: int) -> None:
        if not 1 <= table_bits <= 24:
            raise ValueError(f"table_bits must be in 1..24, got {table_bits!r}")
        self.rate_bits = float(rate_bits)
        self.exponent = zipf_exponent(rate_bits)
        self.table_bits = int(table_bits)
        size = 1 << self.table_bits
        k = np.arange(1, size + 1, dtype=np.float64)
        self._code = PrefixCode.from_probabilities(k**-self.exponent, escape=float(zeta(self.exponent, size + 1)))

    def __reduce__(self) -> tuple[type[IndexCode], tuple[float, int]]:
        """Rebuilt from (rate_bits, table_bits) when copied or pickled: constriction's Huffman
        trees cannot be pickled, and a fitted codec's decoder may run apart from its encoder."""
        return IndexCode, (self.rate_bits, self.table_bits)


#: Pseudo-count of every octave in :class:`FittedIndexCode` (Krichevsky-Trofimov).
PSEUDO_COUNT = 0.5


class FittedIndexCode(_TableCode):
    """Prefix code of an index K in 0..limit-1 (0-based) for the octave law of ``indices``.

    indices: 0-based indices the search selected on pilot realizations. The octave of K is
    b = floor(log2(K + 1)); P(b) = (count_b + 1/2) / (n + B/2) over the B octaves below limit,
    spread uniformly over the 2^b indices of octave b (the last octave truncated at limit).
    """

    def __init__(self, indices: np.ndarray | list[int], limit: int) -> None:
        self.limit = int(limit)
        if self.limit < 2 or self.limit > 1 << 24:
            raise ValueError(f"limit must be in 2..2**24, got {limit!r}")
        self.indices = tuple(int(k) for k in indices)
        if any(not 0 <= k < self.limit for k in self.indices):
            raise ValueError(f"pilot indices must lie in 0..{self.limit - 1}")
        octave = np.floor(np.log2(np.arange(1, self.limit + 1, dtype=np.float64))).astype(np.int64)
        counts = np.bincount(octave[list(self.indices)], minlength=octave[-1] + 1) + PSEUDO_COUNT
        width = np.bincount(octave)  # indices per octave (the last one may be truncated)
        self._code = PrefixCode.from_probabilities((counts / counts.sum() / width)[octave])

    def __reduce__(self) -> tuple[type[FittedIndexCode], tuple[tuple[int, ...], int]]:
        """Rebuilt from (indices, limit) when copied or pickled (see :meth:`IndexCode.__reduce__`)."""
        return FittedIndexCode, (self.indices, self.limit)
