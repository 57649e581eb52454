"""The codec evaluation protocol: fit, encode the test split, decode, and measure the real
bitstream's rate and the decoded distortion (public, for benchmarks and plugin authors)."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from rdbench.interfaces import Bits, Codec, RDPoint, Source
from rdbench.spec import CellError
from rdbench.targets import Target


def evaluate_codec(codec: Codec, source: Source, target: Target, seed: int, n_test: int) -> RDPoint:
    """Fit, encode the test split, decode, and measure: an operational point."""
    codec.fit(source, target, seed)
    return _measure_codec(codec, source, seed, n_test)


def evaluate_codec_curve(
    codec: Codec, source: Source, targets: Sequence[Target], seed: int, n_test: int
) -> tuple[list[list[RDPoint]], dict[str, str]]:
    """:func:`evaluate_codec` at each target in turn, through :meth:`Codec.fit_curve`.

    Returns the points, one list per target, and the errors: a target whose measurement
    fails, or that fit_curve never reached (it raised or stopped first), gets no points and
    its message in the errors (keyed by the target's text); the targets measured are kept.
    A caller that needs every target raises when the errors are not empty.
    """
    points: dict[Target, list[RDPoint]] = {}
    errors: dict[str, str] = {}
    try:
        for target in codec.fit_curve(source, targets, seed):
            try:
                points[target] = [_measure_codec(codec, source, seed, n_test)]
            except Exception as exc:
                errors[str(target)] = f"{type(exc).__name__}: {exc}"
                points[target] = []
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "CellError: fit_curve yielded no fit for this target"
    for target in targets:
        if target not in points:
            errors[str(target)] = reason
    return [points.get(t, []) for t in targets], errors


def _measure_codec(codec: Codec, source: Source, seed: int, n_test: int) -> RDPoint:
    """Encode the test split with a fitted codec, decode with a deep copy of it taken before
    encoding (a separate instance), and measure.

    n_test realizations are coded, at most the test split's size (each once; see
    :meth:`Source.split_size`) and the codec's :attr:`Codec.max_test`. Rate is the real
    bitstream length in bits per realization; distortion is measured between the test
    realizations and the decoder's output.
    """
    n_test = min(n for n in (n_test, source.split_size("test"), codec.max_test) if n is not None)
    x = source.sample(n_test, seed, "test")
    decoder = copy.deepcopy(codec)  # a separate instance, taken right after fit: it never sees the encoder's state
    t0 = time.perf_counter()
    if codec.coding == "one-shot":
        messages = [codec.encode(xi) for xi in x]
        t1 = time.perf_counter()
        x_hat = np.stack([np.asarray(decoder.decode(m)) for m in messages])
    elif codec.coding == "stream":
        messages = [codec.encode(x)]
        t1 = time.perf_counter()
        x_hat = np.asarray(decoder.decode(messages[0]))
    else:
        raise CellError(f"codec.coding must be 'one-shot' or 'stream', got {codec.coding!r}")
    t2 = time.perf_counter()
    for m in messages:
        if not isinstance(m, (bytes, Bits)):
            raise CellError(f"codec.encode must return bytes or rdbench.Bits, got {type(m).__name__}")
    if x_hat.shape != x.shape:
        raise CellError(f"decoded shape {x_hat.shape} differs from the input shape {x.shape}")
    lengths = np.array([Bits.length(m) for m in messages], dtype=np.float64)
    distortions = np.asarray(source.distortion(x, x_hat), dtype=np.float64)
    details = {
        "coding": codec.coding,
        "n_test": n_test,
        "encode_seconds": t1 - t0,
        "decode_seconds": t2 - t1,
        "distortion_stderr": standard_error(distortions),
        **({"rate_stderr_bits": standard_error(lengths)} if codec.coding == "one-shot" else {}),
        **codec.details(),
    }
    return RDPoint(
        rate_bits=float(lengths.sum()) / n_test,
        distortion=float(np.mean(distortions)),
        bound="operational",
        details=details,
    )


def standard_error(values: ArrayLike) -> float | None:
    """The standard error std / sqrt(n) of the mean of n i.i.d. ``values`` (any shape, flattened;
    a CPU tensor too), None for n < 2: of codec points, the sandwich bounds and WGD."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return float(np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else None
