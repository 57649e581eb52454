"""The three interfaces a plugin implements: Source, Estimator and Codec.

Units, everywhere in rdbench:

* rate: **bits per source realization** (one realization = one sample of the source: a
  scalar, a vector of shape ``(m,)``, an image of shape ``(C, H, W)``);
* distortion: per realization, as the source's :class:`~rdbench.distortion.Distortion`
  defines it (squared error is summed over the realization, not averaged).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from rdbench.distortion import Distortion

if TYPE_CHECKING:
    from rdbench.targets import Target

Split = Literal["train", "test"]
Bound = Literal["estimate", "upper", "lower", "operational"]
BOUNDS: tuple[str, ...] = ("estimate", "upper", "lower", "operational")
SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class DiscreteModel:
    """A finite source: ``pmf[i]`` is the probability of ``alphabet[i]``.

    pmf: (k,) float64 summing to 1; alphabet: (k, *shape); reproductions: (j, *shape),
    the reproduction alphabet a discrete method should search over.
    """

    pmf: np.ndarray
    alphabet: np.ndarray
    reproductions: np.ndarray


class Source(ABC):
    """An i.i.d. source P_X with a distortion measure.

    Subclasses set :attr:`shape` and :attr:`distortion` and implement :meth:`sample`.
    Sources whose R(D) is known in closed form override :meth:`rate_distortion` and
    :attr:`d_max`; finite sources also return a :class:`DiscreteModel`.

    Real-data sources declare the files they read on their record
    (``SourceRecord.data``, an :class:`rdbench.data.Dataset`): ``--sources all`` then
    skips such a source while a file is missing or fails its checksum, saying why, and
    naming it explicitly is an error. The source itself opens its files through
    :meth:`rdbench.data.Dataset.locate` (which verifies them) and raises
    :class:`rdbench.data.DataError` for a file it cannot parse; it never downloads.
    """

    #: Shape of one realization: ``()`` scalar, ``(m,)`` vector, ``(C, H, W)`` image.
    shape: tuple[int, ...] = ()
    #: The distortion measure d(x, y) between a realization and its reproduction.
    distortion: Distortion

    @abstractmethod
    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        """n realizations, shape (n, *shape); a pure function of (n, seed, split).

        ``train`` samples are for fitting, ``test`` samples for evaluation; for a given
        seed the two splits are independent.
        """

    def split_size(self, split: Split) -> int | None:
        """How many distinct realizations ``split`` holds (a finite dataset), or None when
        :meth:`sample` draws fresh ones without end. Codecs are evaluated on at most the
        test split's size, each test realization once."""
        return None

    def rate_distortion(self, distortion: float) -> float | None:
        """Exact R(D) in bits per realization, or None when theory gives none."""
        return None

    @property
    def d_max(self) -> float | None:
        """Smallest distortion reachable at rate 0 (min_y E d(X, y)), or None if unknown."""
        return None

    @property
    def has_exact_rd(self) -> bool:
        return type(self).rate_distortion is not Source.rate_distortion

    def distortion_at_rate(self, rate_bits: float) -> float | None:
        """D(R): the distortion where the exact R(D) equals ``rate_bits``, or None.

        The default inverts :meth:`rate_distortion` numerically on (0, d_max]; sources with
        a closed-form inverse override it.
        """
        if not self.has_exact_rd or self.d_max is None:
            return None
        if rate_bits <= 0:
            return float(self.d_max)
        from scipy.optimize import brentq

        lo, hi = float(self.d_max) * 1e-300, float(self.d_max)
        lo_rate = self.rate_distortion(lo)
        if lo_rate is None or lo_rate < rate_bits:
            return None  # R(D) saturates below the requested rate (e.g. discrete H(X))
        return float(brentq(lambda d: self.rate_distortion(d) - rate_bits, lo, hi, xtol=1e-300, rtol=1e-13))

    def discrete(self) -> DiscreteModel | None:
        """The finite model of a discrete source, or None for continuous sources."""
        return None

    @staticmethod
    def rng(seed: int, split: Split) -> np.random.Generator:
        """The random generator a source should use for ``sample(n, seed, split)``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return np.random.default_rng([int(seed), SPLITS.index(split)])


@runtime_checkable
class GaussianLaw(Protocol):
    """What a source declaring the feature ``gaussian`` provides (``SourceRecord.features``):
    its realizations are X = V Z with Z ~ N(0, diag(variances)), a centered Gaussian law of
    shape (m,) under squared error, whose R(D)-achieving channel is known in closed form
    (reverse water-filling, :class:`rdbench.gaussian.WaterFilling`). The exact RCC channel
    (``pfr``, ``orc``) reads only these two attributes.
    """

    @property
    def variances(self) -> np.ndarray:
        """The covariance's eigenvalues sigma_k^2 > 0, shape (m,), in the order of V's columns."""

    @property
    def rotation(self) -> np.ndarray:
        """The orthogonal eigenbasis V, shape (m, m)."""


@dataclass
class RDPoint:
    """One point on a rate-distortion curve.

    rate_bits: bits per source realization. distortion: per realization.
    bound: what the point claims about R(D): ``estimate``, ``upper`` (R(D) <= rate),
    ``lower`` (R(D) >= rate) or ``operational`` (achieved by a real code).
    rate_lower_bits / rate_upper_bits: an interval the method certifies or a confidence
    interval, when it has one. rate_ceiling_bits: the largest rate this method can report
    from the samples it used (log2 n for Blahut-Arimoto on n samples, log2 M for NERD).
    details: small extra numbers (slope, steps, certificate gap, ...), kept in the results.
    artifacts: named binary files the runner stores beside the cell, under
    ``OUT/artifacts/<cell_id>/`` (a trained model, say, in a format that loads without
    unpickling, such as safetensors).
    """

    rate_bits: float
    distortion: float
    bound: Bound
    rate_lower_bits: float | None = None
    rate_upper_bits: float | None = None
    rate_ceiling_bits: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError if the point is not a valid R-D point."""
        if self.bound not in BOUNDS:
            raise ValueError(f"bound must be one of {BOUNDS}, got {self.bound!r}")
        for name in ("rate_bits", "distortion"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.rate_bits < 0 and self.bound != "lower":
            raise ValueError(f"rate_bits must be >= 0, got {self.rate_bits!r}")
        if self.distortion < 0:
            raise ValueError(f"distortion must be >= 0, got {self.distortion!r}")
        for name, blob in self.artifacts.items():
            if not isinstance(blob, bytes) or not name or "/" in name or name.startswith("."):
                raise ValueError(f"artifact {name!r} must be bytes under a plain file name")
        for name in ("rate_lower_bits", "rate_upper_bits", "rate_ceiling_bits"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite or None, got {value!r}")


class Estimator(ABC):
    """Turns samples of a source into points on its R-D curve.

    Constructed with its settings as keyword arguments (the plugin record's defaults,
    the profile's overrides and the user's ``--set`` values, in that order).
    """

    @abstractmethod
    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        """Points near ``target``; each point says whether it is an estimate or a bound.

        The estimator draws the samples it needs with ``source.sample(n, seed, split)``.
        """

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """The points of each target, in the order given (one list per target).

        The runner calls this for a record with ``curve=True``, with every target of the
        source in one cell; override it to compute them together (warm starts along the
        curve). The default estimates each target on its own.
        """
        return [self.estimate(source, target, seed) for target in targets]


@dataclass(frozen=True)
class Bits:
    """A bit string: ``nbits`` bits packed MSB-first into ``data``.

    A codec whose messages are not whole bytes (a prefix code per realization) returns
    Bits so that its rate is counted to the bit.
    """

    data: bytes
    nbits: int

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray)):
            raise TypeError(f"Bits.data must be bytes, got {type(self.data).__name__}")
        if self.nbits < 0 or (self.nbits + 7) // 8 != len(self.data):
            raise ValueError(f"Bits: {self.nbits} bits do not fill {len(self.data)} bytes")

    @staticmethod
    def length(message: Bits | bytes) -> int:
        """Length of a message in bits."""
        return message.nbits if isinstance(message, Bits) else 8 * len(message)


class Codec(ABC):
    """A real compressor: ``fit``, then ``encode`` to bits and ``decode`` back.

    Its rate is the length of the real bitstream, in bits per realization; its distortion
    is measured on held-out ``test`` samples after decoding.
    """

    #: ``one-shot``: one message per realization (``encode`` gets one realization of shape
    #: ``source.shape``); ``stream``: one message for the whole evaluation set (``encode``
    #: gets all n realizations, shape (n, *shape)).
    coding: ClassVar[Literal["one-shot", "stream"]] = "stream"
    #: The most test realizations the runner codes (after ``fit``), for codecs that spend
    #: seconds on each; None: the profile's count (at most the test split's size).
    max_test: int | None = None

    @abstractmethod
    def fit(self, source: Source, target: Target, seed: int) -> None:
        """Train for ``target`` on ``source.sample(n, seed, "train")`` samples."""

    def fit_curve(self, source: Source, targets: Sequence[Target], seed: int) -> Iterator[Target]:
        """Fit for each target in turn, yielding it once this codec is fitted for it; the
        runner encodes and decodes the test split before asking for the next.

        The runner calls this for a record with ``curve=True`` (one cell holding every
        target of the source); override it to warm-start each fit from the previous one.
        The default fits each target from scratch.
        """
        for target in targets:
            self.fit(source, target, seed)
            yield target

    @abstractmethod
    def encode(self, x: np.ndarray) -> Bits | bytes:
        """Compress one realization (one-shot) or the evaluation set (stream)."""

    @abstractmethod
    def decode(self, message: Bits | bytes) -> np.ndarray:
        """Invert :meth:`encode`; raise ValueError on corrupted input."""

    def details(self) -> dict[str, Any]:
        """Extra numbers about the last evaluation (ideal code length, ...); optional."""
        return {}
