"""The ``pfr`` / ``orc`` codecs: reverse channel coding of Q*_{Y|X} (paper Sec. V, Algorithms 2 and 3).

fit: build the channel (the exact Gaussian one, or NERD's, see :mod:`.channels` and
:mod:`.learned`), the codebook drawn from the cell seed (:mod:`.codebook`) and the index code
(:mod:`.index_code`). encode: select K by Prop. 1 (:mod:`.search`) and send its prefix code,
one message per realization (real bits, counted to the bit). decode: read K and regenerate
the one chunk of candidates that holds Y_K; the reproduction is bit for bit the encoder's.

The n-th message a fitted codec encodes uses the common randomness (seed, n), and its decoder
counts messages alike: messages are decoded in the order they were encoded (a corrupted one
still takes its turn), as RCC assumes fresh common randomness for every message. With one
codebook shared by all realizations their selections would be correlated (PFR favours the
same early, small-weight candidates for every x), and the average distortion of a test set
would stray far from the channel's.

Exact PFR (``n_candidates`` None) searches until the stopping rule proves K, at most
``max_candidates`` per realization (then it keeps the best found and counts the realization
as capped). Its search length is about 2^(D_inf(x)) with D_inf(x) = -log2 E[exp(beta* d(x, Y))],
finite for every x but infinite on average over a Gaussian source; ``fit`` refuses a target
whose median search exceeds the cap (tried on training realizations).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rdbench.interfaces import Bits, Codec, Source
from rdbench.targets import Target
from rdbench_plugins.rcc.channels import Channel, ExactGaussianChannel
from rdbench_plugins.rcc.codebook import Codebook
from rdbench_plugins.rcc.index_code import FittedIndexCode, IndexCode, default_table_bits, zipf_exponent
from rdbench_plugins.rcc.search import Selection, select

#: Training realizations exact PFR tries in ``fit``: a majority capped fails the target.
PILOT_REALIZATIONS = 15
#: Message numbers of those trials (apart from the numbers 0, 1, ... of coded messages).
_PILOT_MESSAGES = 1 << 62


class RCC(Codec):
    """PFR or ORC on an exact or learned channel; rates in bits per realization.

    method: ``pfr`` (Poisson arrival weights) or ``orc`` (ordered random coding, eq. 28).
    channel: ``exact`` (the Gaussian source's own Q*_Y, beta*) or ``nerd`` (NERD-RCC).
    n_candidates: N; None takes N = 2^ceil(C + margin_bits), or for PFR with ``exact`` no fixed
    N. exact (PFR): search until the stopping rule proves K (at most max_candidates per
    realization) instead of over N candidates. max_candidates: the most candidates one
    realization may search (and the largest N). max_test: the most test realizations the
    runner codes (:attr:`rdbench.Codec.max_test`; None: the profile's). chunk_size: the most
    candidates generated and scored at once (chunks grow to it from 256, see :mod:`.codebook`).
    table_bits: the Zipf index code's Huffman table has 2**table_bits entries (None: from C,
    see :mod:`.index_code`).
    index_code: ``zipf`` (the paper's, for any channel) or ``fitted`` (a law fitted to the
    indices selected for ``index_pilots`` training realizations; needs a fixed N).
    NERD channel only: nerd_profile (the ``nerd`` record's profile to train with, default
    ``default``), nerd (overrides of its settings) and device (NERD's training device, unless
    nerd names one); or generator (a path to a NERD ``generator.pt``, used instead of
    training) with generator_rate_bits (the rate NERD reported for it, C); candidate_dtype
    (``float32`` or ``bfloat16``: the dtype the generator draws candidates in, see
    :class:`.learned.NerdChannel`; None: by the kind of realization,
    :data:`rdbench_plugins.budgets.CANDIDATE_DTYPES`). Candidates are generated and scored
    on the CPU.
    """

    coding = "one-shot"

    def __init__(
        self,
        method: str = "pfr",
        channel: str = "exact",
        n_candidates: int | None = None,
        margin_bits: float = 8.0,
        exact: bool = True,
        max_candidates: int = 2**22,
        max_test: int | None = None,
        chunk_size: int = 2**14,
        table_bits: int | None = None,
        index_code: str = "zipf",
        index_pilots: int = 64,
        nerd_profile: str | None = None,
        nerd: Mapping[str, Any] | None = None,
        device: str | None = None,
        generator: str | None = None,
        generator_rate_bits: float | None = None,
        candidate_dtype: str | None = None,
    ) -> None:
        if n_candidates is not None and n_candidates > max_candidates:
            raise ValueError(f"n_candidates={n_candidates} exceeds max_candidates={max_candidates}")
        nerd_only = {
            "nerd_profile": nerd_profile,
            "nerd": nerd,
            "device": device,
            "generator": generator,
            "generator_rate_bits": generator_rate_bits,
            "candidate_dtype": candidate_dtype,
        }
        if channel == "exact" and any(v is not None for v in nerd_only.values()):
            given = sorted(k for k, v in nerd_only.items() if v is not None)
            raise ValueError(f"{', '.join(given)} only apply to channel='nerd'")
        self.method = method
        self.channel_kind = channel
        self.n_candidates = None if n_candidates is None else int(n_candidates)
        self.margin_bits = float(margin_bits)
        self.exact = exact and method == "pfr" and n_candidates is None
        self.max_candidates = int(max_candidates)
        self.max_test = None if max_test is None else int(max_test)
        self.chunk_size = int(chunk_size)
        self.table_bits = table_bits
        if index_code not in ("zipf", "fitted"):
            raise ValueError(f"index_code must be 'zipf' or 'fitted', got {index_code!r}")
        if index_code == "fitted" and self.exact:
            raise ValueError("index_code='fitted' needs a fixed N: set exact=False or n_candidates")
        self.index_code = index_code
        self.index_pilots = int(index_pilots)
        self.nerd_profile = nerd_profile or "default"
        self.nerd = {"device": device or "cpu", **(nerd or {})}
        self.generator = generator
        self.generator_rate_bits = generator_rate_bits
        self.candidate_dtype = candidate_dtype
        self._log: list[tuple[Selection, float, float]] = []  # (selection, seconds, ideal bits) per encode

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, source: Source, target: Target, seed: int) -> None:
        t0 = time.perf_counter()
        channel = self._channels(source, [target], seed)[0]
        self._use(channel, source, seed, time.perf_counter() - t0)

    def fit_curve(self, source: Source, targets: Sequence[Target], seed: int) -> Iterator[Target]:
        """Every target's channel at once (NERD-RCC: the whole NERD curve, warm-started, or
        read back from the run's ``nerd`` cell), then each target's codebook in turn."""
        t0 = time.perf_counter()
        channels = self._channels(source, targets, seed)
        share = (time.perf_counter() - t0) / len(targets)
        for target, channel in zip(targets, channels):
            self._use(channel, source, seed, share)
            yield target

    def _use(self, channel: Channel, source: Source, seed: int, channel_seconds: float) -> None:
        """Set up the codebook and index code for ``channel`` (which took channel_seconds)."""
        t0 = time.perf_counter() - channel_seconds
        self.channel = channel
        self._shape = tuple(source.shape)
        rate = self.channel.rate_bits
        self.codebook = Codebook(self.channel, seed, self.method, self._limit(rate), self.chunk_size)
        if self.exact:
            self._pilot(source, seed)
        self.code = self._index_code(source, seed)
        self._fit_seconds = time.perf_counter() - t0
        self._log = []
        self._sent = self._received = 0  # messages encoded and decoded since fit

    def _index_code(self, source: Source, seed: int) -> IndexCode | FittedIndexCode:
        """The Zipf code for C, or the law of the indices selected for ``index_pilots`` training
        realizations (``fitted``; their messages are numbered apart from coded ones)."""
        if self.index_code == "zipf":
            rate = self.channel.rate_bits
            return IndexCode(rate, default_table_bits(rate) if self.table_bits is None else self.table_bits)
        first = _PILOT_MESSAGES + PILOT_REALIZATIONS
        pilots = source.sample(self.index_pilots, seed, "train")
        return FittedIndexCode([self.search(x, first + i).index for i, x in enumerate(pilots)], self.codebook.limit)

    def _channels(self, source: Source, targets: Sequence[Target], seed: int) -> list[Channel]:
        if self.channel_kind == "exact":
            return [ExactGaussianChannel(source, target) for target in targets]
        from rdbench_plugins.rcc.learned import NerdChannel

        if self.generator is not None:
            if len(targets) > 1:
                raise ValueError("a generator file holds one point: run it with one target")
            return [NerdChannel.from_file(self.generator, self.generator_rate_bits, source, self.candidate_dtype)]
        if self.generator_rate_bits is not None:
            raise ValueError("generator_rate_bits needs a generator file")
        return NerdChannel.trained(source, targets, seed, self.nerd_profile, self.nerd, self.candidate_dtype)

    def _limit(self, rate_bits: float) -> int:
        """N: n_candidates, max_candidates for exact PFR, else 2^ceil(C + margin_bits)."""
        if self.n_candidates is not None:
            return self.n_candidates
        if self.exact:
            return self.max_candidates
        bits = math.ceil(rate_bits + self.margin_bits)
        if 2**bits > self.max_candidates:
            raise ValueError(
                f"{self.method}: N = 2^{bits} candidates (C = {rate_bits:.2f} bits + margin_bits = "
                f"{self.margin_bits:g}) exceeds max_candidates={self.max_candidates}; "
                "raise max_candidates, lower margin_bits or set n_candidates"
            )
        return 2**bits

    def _pilot(self, source: Source, seed: int) -> None:
        """Refuse a target whose median exact-PFR search exceeds the cap (a majority of
        PILOT_REALIZATIONS training realizations capped); stops as soon as that is decided."""
        majority = PILOT_REALIZATIONS // 2 + 1
        capped = 0
        for i, x in enumerate(source.sample(PILOT_REALIZATIONS, seed, "train")):
            capped += self.search(x, _PILOT_MESSAGES + i).capped
            if capped >= majority:
                raise ValueError(
                    f"pfr: the median exact search at this target exceeds max_candidates={self.max_candidates}: "
                    f"{capped} of {i + 1} training realizations reached the cap (the search takes about "
                    f"2^(D_inf(x)) candidates, D_inf(x) >= C = {self.channel.rate_bits:.2f} bits); lower the rate, "
                    "raise max_candidates, or set a finite n_candidates"
                )
            if i + 1 - capped >= majority:
                return

    # -- coding ----------------------------------------------------------------------------

    def search(self, x: np.ndarray, message: int) -> Selection:
        """The encoder's selection for one realization x (the source's shape) as message n."""
        x = np.asarray(x)
        if x.shape != self._shape:
            raise ValueError(f"expected one realization of shape {self._shape}, got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("the realization holds NaN or infinite values")
        return select(self.codebook, message, self.channel.coordinates(x))

    def reproduction(self, index: int, message: int) -> np.ndarray:
        """Y_index of message n as a reproduction (the source's shape): the decoder's output."""
        c, row = self.codebook.locate(index)
        return self.channel.reproduce(self.codebook.candidates(message, c)[row])

    def encode(self, x: np.ndarray) -> Bits:
        t0 = time.perf_counter()
        selection = self.search(x, self._sent)
        seconds = time.perf_counter() - t0
        self._sent += 1
        self._log.append((selection, seconds, self.code.ideal_bits(selection.index)))
        return self.code.encode(selection.index)

    def decode(self, message: Bits | bytes) -> np.ndarray:
        number = self._received
        self._received += 1
        if not isinstance(message, Bits):
            raise ValueError(f"an rcc message is rdbench.Bits, got {type(message).__name__}")
        index = self.code.decode(message)
        if index >= self.codebook.limit:
            raise ValueError(f"corrupted message: index {index} is beyond the {self.codebook.limit} candidates")
        return self.reproduction(index, number)

    # -- results ---------------------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        """The channel, the search (lengths, cap hits, speed) and the index code, per realization."""
        rate = self.channel.rate_bits
        out: dict[str, Any] = {
            "method": self.method,
            **self.channel.details(),
            "exact_search": self.exact,
            "n_candidates": None if self.exact else self.codebook.limit,
            "max_candidates": self.max_candidates,
            "index_code": self.index_code,
            "zipf_exponent": zipf_exponent(rate),
            "table_bits": getattr(self.code, "table_bits", None),
            "guarantee_bits": rate + math.log2(rate + 1.0) + 5.0,
            "chunk_size": self.chunk_size,
            "fit_seconds": self._fit_seconds,
        }
        if self._log:
            examined = np.array([s.examined for s, _, _ in self._log])
            evaluated = sum(s.evaluated for s, _, _ in self._log)
            seconds = sum(t for _, t, _ in self._log)
            out.update(
                search_length_mean=float(examined.mean()),
                search_length_median=float(np.median(examined)),
                search_length_max=int(examined.max()),
                capped_fraction=float(np.mean([s.capped for s, _, _ in self._log])),
                candidates_evaluated=evaluated,
                candidates_per_second=evaluated / seconds if seconds > 0 else None,
                search_seconds_per_realization=seconds / len(self._log),
                index_ideal_bits=float(np.mean([b for _, _, b in self._log])),
                index_log2_bits=float(np.mean([math.log2(s.index + 1) for s, _, _ in self._log])),
            )
        return out
