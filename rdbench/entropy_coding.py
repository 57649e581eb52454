"""Entropy coding shared by every codec: real bitstreams from probability models.

Built on `constriction <https://bamler-lab.github.io/constriction/>`_; rdbench writes no
arithmetic coder of its own.

* **Range coding** (:func:`encode_symbols`, :func:`decode_symbols`): an (n, d) array of
  integers, column j coded with the categorical model ``models[model_index[j]]``, as one
  message (a codec's ``stream`` coding). Each :class:`IntegerModel` covers a finite support
  of integers plus an **escape**: an integer outside the support costs the escape symbol
  followed by the Elias-gamma code of how far outside it lies, so every integer can be coded.
* **Prefix coding** (:class:`PrefixCode`): a Huffman code with an optional escape, for
  ``one-shot`` messages whose length must be honest to the bit (returns :class:`rdbench.Bits`).
* **Ideal code lengths** (:func:`ideal_bits`, :meth:`PrefixCode.code_length`): what the
  models promise, -log2 of their probabilities, to report beside the real length.

Probabilities are quantized to integer frequency tables (:func:`quantize_probabilities`)
before coding, so encoder and decoder use bit-identical models. Decoding corrupted or
truncated input raises ValueError; every decoding loop is bounded by the message length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np

from rdbench.interfaces import Bits

#: Default precision of quantized tables: frequencies sum to 2**PRECISION.
PRECISION = 16
#: Largest precision constriction's range coder accepts for categorical models.
MAX_PRECISION = 24
#: Default cap on the symbols one range-coded message may declare (guards memory).
MAX_SYMBOLS = 1 << 26
#: Escapes code integers at most 2**MAX_ESCAPE_BITS outside the support.
MAX_ESCAPE_BITS = 48
#: First byte of a range-coded message (format version 1).
STREAM_MAGIC = 0xB1
#: A range-coded message ends with this many check bits, coded in the stream itself: any
#: corruption that desynchronizes the decoder (truncation, bit flips, a wrong header) is
#: caught with probability 1 - 2**-CHECK_BITS.
CHECK_BITS = 16
_CHECK_VALUE = 0xA5C3
#: Slack, in bits, between a range-coded payload's length and the information it holds.
_SLACK_BITS = 96


# ---------------------------------------------------------------------------------------
# Quantized tables


def quantize_probabilities(probabilities: Any, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies for a probability table: every entry >= 1, rows sum to 2**precision.

    probabilities: (..., k) nonnegative, finite, each row with a positive sum (rows are
    normalized first). Returns int64 (..., k). Deterministic (largest remainders, ties to
    the lower index), so encoder and decoder that compute the same floats get the same table.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError(f"a probability table needs at least one entry, got shape {p.shape}")
    if not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must be in 1..{MAX_PRECISION}, got {precision}")
    k = p.shape[-1]
    total = 1 << precision
    if k > total:
        raise ValueError(f"{k} symbols do not fit a table of precision {precision} (at most {total})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and nonnegative")
    sums = p.sum(axis=-1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("every probability table needs a positive sum")
    spare = total - k  # every symbol gets 1; the rest is shared out in proportion to p
    share = p / sums * spare
    counts = np.floor(share).astype(np.int64)
    remainder = spare - counts.sum(axis=-1, keepdims=True)
    order = np.argsort(-(share - counts), axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(k), axis=-1)
    counts += ranks < remainder
    return counts + 1


def counts_to_cdf(counts: Any) -> np.ndarray:
    """Cumulative table of integer frequencies: (..., k) -> (..., k + 1) int64, from 0 to the total."""
    c = np.asarray(counts, dtype=np.int64)
    zeros = np.zeros((*c.shape[:-1], 1), dtype=np.int64)
    return np.concatenate([zeros, np.cumsum(c, axis=-1)], axis=-1)


@dataclass(frozen=True, eq=False)
class IntegerModel:
    """A categorical model of integers: the support ``offset .. offset + k - 1`` plus an escape.

    counts: (k + 1,) int64 frequencies summing to ``2**precision``; ``counts[k]`` is the
    escape's. Build one with :meth:`from_probabilities`.
    """

    offset: int
    counts: np.ndarray
    precision: int = PRECISION

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.int64)
        if counts.ndim != 1 or counts.size < 2:
            raise ValueError("IntegerModel.counts must be (k + 1,) with k >= 1 (the last entry is the escape)")
        if np.any(counts < 1) or int(counts.sum()) != 1 << self.precision:
            raise ValueError(f"IntegerModel.counts must be >= 1 and sum to 2**{self.precision}")
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "offset", int(self.offset))

    @classmethod
    def from_probabilities(
        cls, probabilities: Any, offset: int = 0, escape: float = 0.0, precision: int = PRECISION
    ) -> IntegerModel:
        """probabilities: (k,) of the integers offset..offset+k-1; escape: the mass outside them."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1:
            raise ValueError(f"probabilities must be one table (k,), got shape {p.shape}")
        return cls(int(offset), quantize_probabilities(np.append(p, escape), precision), precision)

    @property
    def size(self) -> int:
        """k, the number of integers in the support (the escape not counted)."""
        return self.counts.size - 1

    @property
    def cdf(self) -> np.ndarray:
        """(k + 2,) int64 cumulative frequencies of the support then the escape."""
        return counts_to_cdf(self.counts)

    def log2_probabilities(self) -> np.ndarray:
        """(k + 1,) log2 of the quantized probabilities (support, then escape)."""
        return np.log2(self.counts) - self.precision

    def ideal_bits(self, symbols: Any) -> float:
        """Ideal code length of ``symbols`` under this model, in bits, escapes included."""
        s = np.asarray(symbols, dtype=np.int64).ravel()
        index, outside = self._index(s)
        bits = -self.log2_probabilities()[index].sum()
        return float(bits + sum(2 * (g.bit_length() - 1) + 1 for g in _escape_values(s[outside], self)))

    def _index(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = s - self.offset
        outside = (index < 0) | (index >= self.size)
        return np.where(outside, self.size, index), outside

    def _constriction(self) -> Any:
        return constriction.stream.model.Categorical(self.counts.astype(np.float64), perfect=False)


def _escape_values(values: np.ndarray, model: IntegerModel) -> list[int]:
    """The Elias-gamma argument g >= 1 of each escaped integer: 2(distance - 1) + side + 1."""
    lo, hi = model.offset, model.offset + model.size - 1
    out = []
    for v in values.tolist():
        g = 2 * (lo - v - 1) + 1 if v < lo else 2 * (v - hi - 1) + 2
        if g.bit_length() > MAX_ESCAPE_BITS:
            raise ValueError(f"symbol {v} lies too far outside the model's support [{lo}, {hi}]")
        out.append(g)
    return out


def _unescape(g: int, model: IntegerModel) -> int:
    lo, hi = model.offset, model.offset + model.size - 1
    distance, side = divmod(g - 1, 2)
    return hi + 1 + distance if side else lo - 1 - distance


def _elias_gamma(g: int) -> list[int]:
    """Elias-gamma code of g >= 1: floor(log2 g) zeros, then g's bits from the most significant."""
    n = g.bit_length() - 1
    return [0] * n + [(g >> i) & 1 for i in range(n, -1, -1)]


def _read_elias_gamma(read_bit: Any) -> int:
    zeros = 0
    while read_bit() == 0:
        zeros += 1
        if zeros > MAX_ESCAPE_BITS:
            raise ValueError("corrupted message: an escape code is too long")
    g = 1
    for _ in range(zeros):
        g = (g << 1) | read_bit()
    return g


# ---------------------------------------------------------------------------------------
# Range coding: one message for many symbols


def _columns(d: int, models: Sequence[IntegerModel], model_index: Any) -> list[np.ndarray]:
    """For each model, the columns it codes (model_index: (d,) ints, default 0..d-1)."""
    if model_index is None:
        if len(models) != d:
            raise ValueError(f"{d} columns need {d} models (or a model_index), got {len(models)}")
        index = np.arange(d)
    else:
        index = np.asarray(model_index, dtype=np.int64)
        if index.shape != (d,) or (d and (index.min() < 0 or index.max() >= len(models))):
            raise ValueError(f"model_index must be ({d},) integers in 0..{len(models) - 1}")
    return [np.flatnonzero(index == m) for m in range(len(models))]


def varint(value: int) -> bytes:
    """LEB128 bytes of an integer >= 0 (message headers)."""
    if value < 0:
        raise ValueError(f"varint needs an integer >= 0, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a :func:`varint` at ``data[pos:]``: (value, position after it); ValueError if malformed."""
    value = 0
    for shift in range(0, 63, 7):
        if pos >= len(data):
            raise ValueError("corrupted message: the header is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise ValueError("corrupted message: a header field is too long")


def encode_symbols(symbols: Any, models: Sequence[IntegerModel], model_index: Any = None) -> bytes:
    """Range-code an (n, d) integer array as one message.

    Column j is coded with ``models[model_index[j]]`` (``models[j]`` when model_index is
    None). The message holds a header (format byte, n, d), the range coder's 32-bit words
    and, coded in the stream, a 16-bit end check. Its length in bits is the real rate.
    """
    s = np.asarray(symbols)
    if s.ndim != 2 or not (np.issubdtype(s.dtype, np.integer) or s.size == 0):
        raise ValueError(f"symbols must be an (n, d) integer array, got {s.dtype} {s.shape}")
    s = s.astype(np.int64)

    columns = _columns(s.shape[1], models, model_index)
    encoder = constriction.stream.queue.RangeEncoder()
    escapes: list[tuple[int, np.ndarray]] = []
    for m, (model, cols) in enumerate(zip(models, columns)):
        if cols.size == 0:
            continue
        index, outside = model._index(s[:, cols].ravel())
        encoder.encode(index.astype(np.int32), model._constriction())
        if outside.any():
            escapes.append((m, s[:, cols].ravel()[outside]))
    bit = constriction.stream.model.Uniform(2)
    for m, values in escapes:
        for g in _escape_values(values, models[m]):
            encoder.encode(np.array(_elias_gamma(g), dtype=np.int32), bit)
    encoder.encode(_CHECK_VALUE, constriction.stream.model.Uniform(1 << CHECK_BITS))
    words = encoder.get_compressed().astype("<u4")
    return bytes([STREAM_MAGIC]) + varint(s.shape[0]) + varint(s.shape[1]) + words.tobytes()


def decode_symbols(
    message: bytes, models: Sequence[IntegerModel], model_index: Any = None, max_symbols: int = MAX_SYMBOLS
) -> np.ndarray:
    """Invert :func:`encode_symbols` with the same models: returns the (n, d) int64 array.

    Raises ValueError on a message that is not one (wrong format byte, a header that
    disagrees with the models, more than ``max_symbols`` symbols, a payload that is not
    whole words, truncation, corruption caught by the end check or by decoding more
    information than the message holds).
    """
    if isinstance(message, Bits):
        if message.nbits % 8:
            raise ValueError("a range-coded message is whole bytes")
        message = message.data
    if not isinstance(message, (bytes, bytearray)):
        raise ValueError(f"expected a bytes message, got {type(message).__name__}")
    data = bytes(message)
    if not data or data[0] != STREAM_MAGIC:
        raise ValueError("not an rdbench range-coded message (wrong format byte)")
    n, pos = read_varint(data, 1)
    d, pos = read_varint(data, pos)
    expected_d = len(models) if model_index is None else np.asarray(model_index).size
    if d != expected_d:
        raise ValueError(f"corrupted message: it declares {d} columns, the models code {expected_d}")
    if n * d > max_symbols:
        raise ValueError(f"corrupted message: it declares {n} x {d} symbols, more than the {max_symbols} allowed")
    payload = data[pos:]
    if len(payload) % 4:
        raise ValueError("corrupted message: the payload is not a whole number of 32-bit words")

    budget = 8.0 * len(payload) + _SLACK_BITS  # information the payload can hold
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    columns = _columns(d, models, model_index)
    out = np.empty((n, d), dtype=np.int64)
    escaped: list[tuple[int, np.ndarray, np.ndarray]] = []
    try:
        for m, (model, cols) in enumerate(zip(models, columns)):
            if cols.size == 0:
                continue
            index = np.asarray(decoder.decode(model._constriction(), n * cols.size), dtype=np.int64)
            budget += model.log2_probabilities()[index].sum()
            if budget < 0:
                raise ValueError("corrupted or truncated message: it decodes to more information than it holds")
            block = index + model.offset
            esc = index == model.size
            if esc.any():
                escaped.append((m, cols, np.flatnonzero(esc)))
            out[:, cols] = block.reshape(n, cols.size)
        bit = constriction.stream.model.Uniform(2)

        def read_bit() -> int:
            nonlocal budget
            budget -= 1
            if budget < 0:
                raise ValueError("corrupted or truncated message: escape codes run past its end")
            return int(decoder.decode(bit))

        for m, cols, where in escaped:
            values = out[:, cols].ravel()
            values[where] = [_unescape(_read_elias_gamma(read_bit), models[m]) for _ in where]
            out[:, cols] = values.reshape(n, cols.size)
        check = int(decoder.decode(constriction.stream.model.Uniform(1 << CHECK_BITS)))
    except ValueError:
        raise
    except Exception as exc:  # constriction's own errors on malformed data
        raise ValueError(f"corrupted message: {exc}") from exc
    if check != _CHECK_VALUE:
        raise ValueError("corrupted or truncated message: the end check does not match")
    if not decoder.maybe_exhausted() or encode_symbols(out, models, model_index) != data:
        # the range coder may report itself exhausted with a word left over, so the message
        # must also be exactly the encoding of what it decodes to
        raise ValueError("corrupted message: data left over after the last symbol")
    return out


def ideal_bits(symbols: Any, models: Sequence[IntegerModel], model_index: Any = None) -> float:
    """Ideal code length, in bits, of an (n, d) array under the quantized models (escapes included)."""
    s = np.asarray(symbols, dtype=np.int64)
    if s.ndim != 2:
        raise ValueError(f"symbols must be (n, d), got shape {s.shape}")
    columns = _columns(s.shape[1], models, model_index)
    return float(sum(model.ideal_bits(s[:, cols]) for model, cols in zip(models, columns) if cols.size))


# ---------------------------------------------------------------------------------------
# Prefix (Huffman) codes: messages honest to the bit


def _words_to_bits(words: np.ndarray, nbits: int) -> Bits:
    """constriction's queue words (bits least significant first) -> Bits (MSB-first bytes)."""
    stream = np.unpackbits(np.asarray(words, dtype="<u4").view(np.uint8), bitorder="little")[:nbits]
    return Bits(np.packbits(stream).tobytes(), int(nbits))


def _bits_to_words(message: Bits) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(message.data, dtype=np.uint8))
    if stream[message.nbits :].any():
        raise ValueError("corrupted message: the padding bits after the last bit are not zero")
    stream = np.concatenate([stream[: message.nbits], np.zeros(-message.nbits % 32, dtype=np.uint8)])
    return np.packbits(stream, bitorder="little").view("<u4").astype(np.uint32)


class PrefixCode:
    """A Huffman code of the integers 0..K-1, with an optional escape for K, K+1, ...

    With an escape, an integer s >= K is coded as the escape's codeword followed by the
    Elias-gamma code of s - K + 1, so a code built on a truncated table (say the head of a
    Zipf law) still codes every nonnegative integer. Messages are :class:`rdbench.Bits`
    whose ``nbits`` is the exact sum of the codeword lengths.
    """

    def __init__(self, probabilities: Any, escape: float | None = None) -> None:
        """probabilities: (K,) of the integers 0..K-1 (normalized by their sum with the
        escape); escape: probability of the escape symbol, or None for no escape.
        """
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probabilities must be a non-empty (K,) table of finite nonnegative numbers")
        if escape is not None and not (math.isfinite(escape) and escape > 0):
            raise ValueError(f"escape probability must be > 0 (or None), got {escape!r}")
        table = p if escape is None else np.append(p, escape)
        if table.size < 2 or not table.sum() > 0:
            raise ValueError("a prefix code needs at least two symbols (or an escape) and a positive total")
        self.size = p.size
        self.has_escape = escape is not None
        huffman = constriction.symbol.huffman
        self._table = table
        self._encoder_tree = huffman.EncoderHuffmanTree(table)
        self._decoder_tree = huffman.DecoderHuffmanTree(table)
        half = np.array([0.5, 0.5])
        self._bit_encoder = huffman.EncoderHuffmanTree(half)
        self._bit_decoder = huffman.DecoderHuffmanTree(half)
        self._lengths: dict[int, int] = {}

    @classmethod
    def from_probabilities(cls, probabilities: Any, escape: float | None = None) -> PrefixCode:
        """The Huffman code of ``probabilities`` (K,), with an escape of probability ``escape``."""
        return cls(probabilities, escape)

    @property
    def lengths(self) -> np.ndarray:
        """(K,) codeword lengths in bits (then the escape's, if any)."""
        return np.array([self._codeword_length(i) for i in range(self._table.size)], dtype=np.int64)

    def _codeword_length(self, index: int) -> int:
        if index not in self._lengths:
            encoder = constriction.symbol.QueueEncoder()
            encoder.encode_symbol(index, self._encoder_tree)
            self._lengths[index] = int(encoder.get_compressed_and_bitrate()[1])
        return self._lengths[index]

    def code_length(self, symbols: Any) -> int:
        """Exact length in bits of the message :meth:`encode` writes for ``symbols``."""
        return sum(self._symbol_bits(s) for s in self._check(symbols))

    def ideal_bits(self, symbols: Any) -> float:
        """-log2 of the table probabilities of ``symbols`` (escapes: plus their Elias-gamma bits)."""
        with np.errstate(divide="ignore"):
            info = -np.log2(self._table / self._table.sum())
        total = 0.0
        for s in self._check(symbols):
            if s < self.size:
                total += info[s]
            else:
                total += info[-1] + 2 * (s - self.size + 1).bit_length() - 1
        return float(total)

    def _symbol_bits(self, s: int) -> int:
        if s < self.size:
            return self._codeword_length(s)
        return self._codeword_length(self.size) + 2 * (s - self.size + 1).bit_length() - 1

    def _check(self, symbols: Any) -> list[int]:
        s = np.asarray(symbols)
        if s.ndim > 1 or not (np.issubdtype(s.dtype, np.integer) or s.size == 0):
            raise ValueError(f"symbols must be a sequence of integers, got {s.dtype} {s.shape}")
        values = s.astype(np.int64).ravel().tolist()
        for v in values:
            if v < 0 or (v >= self.size and not self.has_escape):
                raise ValueError(f"symbol {v} is outside 0..{self.size - 1} and the code has no escape")
            if v >= self.size and (v - self.size + 1).bit_length() > MAX_ESCAPE_BITS:
                raise ValueError(f"symbol {v} is too large for the escape code")
        return values

    def encode(self, symbols: Any) -> Bits:
        """One message for a sequence of nonnegative integers; ``nbits`` = :meth:`code_length`."""
        encoder = constriction.symbol.QueueEncoder()
        for s in self._check(symbols):
            if s < self.size:
                encoder.encode_symbol(s, self._encoder_tree)
            else:
                encoder.encode_symbol(self.size, self._encoder_tree)
                for b in _elias_gamma(s - self.size + 1):
                    encoder.encode_symbol(b, self._bit_encoder)
        words, nbits = encoder.get_compressed_and_bitrate()
        return _words_to_bits(words, nbits)

    def decode(self, message: Bits, count: int | None = None) -> np.ndarray:
        """Invert :meth:`encode`: ``count`` symbols (None: as many as the message holds), int64.

        Raises ValueError if the message is truncated, holds bits after the last symbol,
        or is not a valid code sequence.
        """
        if not isinstance(message, Bits):
            raise ValueError(f"a prefix-coded message is rdbench.Bits, got {type(message).__name__}")
        if count is not None and not 0 <= count <= message.nbits:
            raise ValueError(f"a {message.nbits}-bit message cannot hold {count} symbols")
        decoder = constriction.symbol.QueueDecoder(_bits_to_words(message))
        used = 0

        def read(tree: Any) -> int:
            try:
                return int(decoder.decode_symbol(tree))
            except Exception as exc:  # constriction: "Ran out of bits in compressed data."
                raise ValueError(f"truncated message: {exc}") from exc

        out: list[int] = []
        while (len(out) < count) if count is not None else (used < message.nbits):
            s = read(self._decoder_tree)
            if s == self.size and self.has_escape:
                s = self.size - 1 + _read_elias_gamma(lambda: read(self._bit_decoder))
            used += self._symbol_bits(s)
            if used > message.nbits:
                raise ValueError("truncated message: the last codeword runs past its end")
            out.append(s)
        if used != message.nbits:
            raise ValueError(f"corrupted message: {message.nbits - used} bits left after the last symbol")
        return np.array(out, dtype=np.int64)
