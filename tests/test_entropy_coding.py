"""rdbench.entropy_coding: quantized tables, range coding, prefix codes, corrupted input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rdbench import Bits
from rdbench.entropy_coding import (
    IntegerModel,
    PrefixCode,
    counts_to_cdf,
    decode_symbols,
    encode_symbols,
    ideal_bits,
    quantize_probabilities,
    read_varint,
    varint,
)


def gaussian_model(scale: float, half_width: int, escape: float = 1e-6) -> IntegerModel:
    k = np.arange(-half_width, half_width + 1)
    p = np.exp(-0.5 * (k / scale) ** 2)
    return IntegerModel.from_probabilities(p / p.sum() * (1 - escape), -half_width, escape)


@pytest.fixture
def stream():
    """An (n, 3) array, its three models (escapes included) and its message."""
    rng = np.random.default_rng(0)
    models = [gaussian_model(3.0, 12), gaussian_model(0.3, 2), IntegerModel.from_probabilities([0.99, 0.01], 0)]
    x = np.stack(
        [np.round(rng.normal(0, 3, 400)), np.round(rng.normal(0, 0.3, 400)), rng.random(400) < 0.01], axis=1
    ).astype(np.int64)
    x[5, 0], x[9, 0], x[17, 1], x[3, 2] = 40, -1000, 7, -3  # escapes on both sides
    return x, models, encode_symbols(x, models)


def test_quantized_tables_are_exact_and_deterministic():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(50, 0.1), size=7)
    p[0, :10] = 0.0
    counts = quantize_probabilities(p, 16)
    assert counts.dtype == np.int64 and counts.shape == p.shape
    assert np.all(counts >= 1) and np.all(counts.sum(-1) == 2**16)
    assert np.array_equal(counts, quantize_probabilities(p.copy(), 16))
    assert np.abs(counts / 2**16 - p / p.sum(-1, keepdims=True)).max() < 50 / 2**16
    cdf = counts_to_cdf(counts)
    assert cdf.shape == (7, 51) and np.all(cdf[:, 0] == 0) and np.all(cdf[:, -1] == 2**16)
    assert np.all(np.diff(cdf, axis=-1) >= 1)


@pytest.mark.parametrize("bad", [[], [np.nan, 1.0], [-0.1, 1.0], [0.0, 0.0]])
def test_quantize_rejects_bad_tables(bad):
    with pytest.raises(ValueError):
        quantize_probabilities(bad)


def test_range_coding_round_trip_with_escapes(stream):
    x, models, message = stream
    assert isinstance(message, bytes)
    assert np.array_equal(decode_symbols(message, models), x)
    # real length within a few words of the ideal code length of the quantized models
    assert 8 * len(message) - ideal_bits(x, models) < 160


def test_range_coding_shares_models_across_columns():
    rng = np.random.default_rng(2)
    models = [gaussian_model(1.0, 5), gaussian_model(4.0, 20)]
    index = np.array([0, 1, 1, 0, 1])
    x = np.round(rng.normal(0, [1, 4, 4, 1, 4], size=(300, 5))).astype(np.int64)
    message = encode_symbols(x, models, index)
    assert np.array_equal(decode_symbols(message, models, index), x)
    empty = encode_symbols(np.zeros((0, 5), dtype=np.int64), models, index)
    assert decode_symbols(empty, models, index).shape == (0, 5)


def test_large_stream_overhead_is_small():
    rng = np.random.default_rng(3)
    models = [gaussian_model(2.0, 10)]
    x = np.round(rng.normal(0, 2, (20_000, 1))).astype(np.int64)
    real = 8 * len(encode_symbols(x, models))
    assert real / ideal_bits(x, models) - 1 < 0.005


def test_range_decoding_rejects_every_truncation(stream):
    x, models, message = stream
    for length in range(len(message)):
        with pytest.raises(ValueError):
            decode_symbols(message[:length], models)


def test_range_decoding_rejects_every_extension(stream):
    """Appended data is refused: one 32-bit word (which the range decoder alone reports as
    exhausted), a byte, several words, whatever they hold."""
    x, models, message = stream
    rng = np.random.default_rng(1)
    for extra in [bytes(4), b"\xff" * 4, bytes(8), *(rng.bytes(4) for _ in range(50))]:
        with pytest.raises(ValueError, match="left over"):
            decode_symbols(message + extra, models)
    with pytest.raises(ValueError, match="whole number of 32-bit words"):
        decode_symbols(message + bytes(1), models)
    assert np.array_equal(decode_symbols(message, models), x)


def test_range_decoding_fuzz_bit_flips_and_random_bytes(stream):
    x, models, message = stream
    rng = np.random.default_rng(4)
    accepted = 0
    for _ in range(400):
        data = bytearray(message)
        position = rng.integers(8 * len(data))
        data[position // 8] ^= 1 << (position % 8)
        try:
            out = decode_symbols(bytes(data), models)
        except ValueError:
            continue
        accepted += 1
        assert out.shape[1] == 3 and out.dtype == np.int64
    assert accepted <= 4  # the end check catches all but about 2**-16 of desynchronized streams
    for size in list(range(12)) + [40, 400]:
        for _ in range(20):
            with pytest.raises(ValueError):
                decode_symbols(rng.bytes(size), models)


def test_range_decoding_never_hangs_on_a_huge_declared_size(stream):
    x, models, message = stream
    forged = bytes([message[0]]) + varint(10**15) + varint(3) + message[len(varint(400)) + 2 :]
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="more than"):
        decode_symbols(forged, models)
    forged = bytes([message[0]]) + varint(1_000_000) + varint(3) + bytes(8)
    with pytest.raises(ValueError, match="information"):
        decode_symbols(forged, models)
    assert time.perf_counter() - t0 < 5


def test_range_coding_input_errors():
    models = [gaussian_model(1.0, 3)]
    with pytest.raises(ValueError):
        encode_symbols(np.zeros((4, 1)), models)  # floats
    with pytest.raises(ValueError):
        encode_symbols(np.zeros((4, 2), dtype=int), models)  # two columns, one model
    with pytest.raises(ValueError, match="too far"):
        encode_symbols(np.array([[2**60]]), models)
    with pytest.raises(ValueError, match="columns"):
        decode_symbols(encode_symbols(np.zeros((4, 1), dtype=int), models), models * 2)
    with pytest.raises(ValueError):
        decode_symbols("not bytes", models)  # type: ignore[arg-type]


def test_varint_round_trip():
    for value in (0, 1, 127, 128, 300, 2**40):
        data = varint(value) + b"rest"
        assert read_varint(data, 0) == (value, len(data) - 4)
    with pytest.raises(ValueError):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError):
        varint(-1)


def zipf(k: int, s: float = 1.2) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** s
    return p / p.sum()


def test_prefix_code_lengths_are_honest_and_satisfy_kraft():
    code = PrefixCode.from_probabilities(zipf(200) * 0.95, escape=0.05)
    lengths = code.lengths
    assert lengths.shape == (201,) and lengths.min() >= 1
    assert np.sum(2.0**-lengths) <= 1 + 1e-12  # Kraft (Huffman codes are complete: = 1)
    rng = np.random.default_rng(5)
    symbols = np.minimum(rng.zipf(1.2, 300) - 1, 10**6).tolist()
    message = code.encode(symbols)
    assert isinstance(message, Bits)
    expected = sum(lengths[s] if s < 200 else lengths[200] + 2 * (s - 199).bit_length() - 1 for s in symbols)
    assert message.nbits == code.code_length(symbols) == expected
    assert np.array_equal(code.decode(message), symbols)
    assert np.array_equal(code.decode(message, count=len(symbols)), symbols)
    # Huffman's expected length is within one bit of the entropy
    q = np.append(zipf(200) * 0.95, 0.05)
    entropy = -(q * np.log2(q)).sum()
    assert entropy <= (q * lengths).sum() < entropy + 1
    assert code.ideal_bits([0, 250]) == pytest.approx(-np.log2(q[0]) - np.log2(q[-1]) + 2 * 6 - 1)


def test_prefix_code_one_shot_messages():
    code = PrefixCode.from_probabilities(zipf(16), escape=1e-3)
    for s in (0, 3, 15, 16, 17, 1000, 2**40):
        message = code.encode([s])
        assert message.nbits == code.code_length([s])
        assert code.decode(message, count=1).tolist() == [s]
    no_escape = PrefixCode.from_probabilities([0.7, 0.2, 0.1])
    assert no_escape.decode(no_escape.encode([2, 0, 1])).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="no escape"):
        no_escape.encode([3])
    with pytest.raises(ValueError):
        no_escape.encode([-1])
    with pytest.raises(ValueError):
        PrefixCode.from_probabilities([1.0])  # one symbol and no escape


def test_prefix_decoding_rejects_truncation_extra_bits_and_bad_padding():
    code = PrefixCode.from_probabilities(zipf(32), escape=0.01)
    message = code.encode([1, 0, 31, 500, 7])
    bits = np.unpackbits(np.frombuffer(message.data, np.uint8))[: message.nbits]
    for n in range(message.nbits):
        truncated = Bits(np.packbits(bits[:n]).tobytes(), n)
        with pytest.raises(ValueError):
            code.decode(truncated, count=5)
    with pytest.raises(ValueError, match="left"):
        code.decode(message, count=4)
    longer = Bits(np.packbits(np.append(bits, [1, 0, 1])).tobytes(), message.nbits + 3)
    with pytest.raises(ValueError):
        code.decode(longer, count=5)
    if message.nbits % 8:
        padded = bytearray(message.data)
        padded[-1] |= 1
        with pytest.raises(ValueError, match="padding"):
            code.decode(Bits(bytes(padded), message.nbits))
    with pytest.raises(ValueError):
        code.decode(message.data)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        code.decode(message, count=message.nbits + 1)


def test_prefix_decoding_fuzz():
    code = PrefixCode.from_probabilities(zipf(64), escape=0.02)
    rng = np.random.default_rng(6)
    for _ in range(300):
        nbits = int(rng.integers(0, 200))
        data = np.packbits(rng.integers(0, 2, nbits).astype(np.uint8)).tobytes()
        message = Bits(data, nbits)
        for count in (None, 3):
            try:
                out = code.decode(message, count=count)
            except ValueError:
                continue
            assert out.ndim == 1 and (count is None or out.size == count)
            assert code.encode(out) == message  # a prefix code: valid input decodes uniquely
