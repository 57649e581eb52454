"""Built-in plugin ``rcc``: lossy one-shot codes by reverse channel coding (paper Sec. V).

``pfr`` (Poisson functional representation) and ``orc`` (ordered random coding) simulate the
R(D)-achieving channel Q*_{Y|X} from candidates Y_i ~ Q*_Y drawn from a shared seed, and send
the selected index with a prefix code: the paper's Zipf code (Algorithms 2 and 3), or for
NERD-RCC one fitted to the indices its search selects on training realizations. ``pfr`` and ``orc`` use the
exact Q*_Y and beta* of a Gaussian source; ``pfr-nerd`` and ``orc-nerd`` use those of a NERD
estimator trained in ``fit`` (NERD-RCC). This module only declares the records; the codec
lives in :mod:`.codec`.

NERD-RCC searches N = 2^ceil(C + 8) candidates per realization for both methods (the
paper's Algorithms 2-3 with a fixed N) and codes at most :data:`NERD_MAX_TEST` test
realizations per profile: a learned Q*_Y is a poorer proposal than the exact one (longer
searches), and a generator network draws candidates far more slowly than the exact Gaussian
channel (``benchmarks/rcc_gaussian.py`` prints the times).
"""

from __future__ import annotations

from rdbench import CodecRecord, hookimpl
from rdbench.settings import choice, number, whole
from rdbench_plugins.budgets import DTYPES

_FACTORY = "rdbench_plugins.rcc.codec:RCC"
#: Test realizations NERD-RCC codes per profile (None: the runner's count).
NERD_MAX_TEST = {"smoke": 50, "default": 200, "paper": None}
#: Training realizations whose selected indices fit the ``fitted`` index code in ``smoke``
#: (64, the default, elsewhere).
SMOKE_INDEX_PILOTS = 16
#: The index searches (:mod:`.codebook`) and the channels (:mod:`.channels`).
METHODS: tuple[str, ...] = ("pfr", "orc")
CHANNELS: tuple[str, ...] = ("exact", "nerd")
_SEARCH = {
    "n_candidates": None,
    "margin_bits": 8.0,
    "exact": True,
    "max_candidates": 2**22,
    "max_test": None,
    "chunk_size": 2**14,
    "table_bits": None,
    "index_code": "zipf",
    "index_pilots": 64,
}
_NERD = {
    "exact": False,
    "index_code": "fitted",
    "max_test": NERD_MAX_TEST["default"],
    "nerd_profile": "default",
    "nerd": {},
    "device": "cpu",
    "generator": None,
    "generator_rate_bits": None,
    "candidate_dtype": None,
}
_CHECKS = {
    "method": choice(*METHODS),
    "channel": choice(*CHANNELS),
    **{key: whole(minimum=1) for key in ("n_candidates", "max_candidates", "chunk_size")},
    "max_test": whole(minimum=1, nullable=True),
    "table_bits": whole(minimum=1),
    "margin_bits": number(minimum=0),
    "index_code": choice("zipf", "fitted"),
    "index_pilots": whole(minimum=1),
}
_NERD_CHECKS = {
    **_CHECKS,
    "generator_rate_bits": number(minimum=0),
    "nerd_profile": choice(*NERD_MAX_TEST),
    "candidate_dtype": choice(*DTYPES),
}
_NERD_PROFILES = {profile: {"nerd_profile": profile, "max_test": n} for profile, n in NERD_MAX_TEST.items()}
_NERD_PROFILES["smoke"]["index_pilots"] = SMOKE_INDEX_PILOTS


@hookimpl
def rdbench_codecs() -> list[CodecRecord]:
    return [
        CodecRecord(
            name="pfr",
            summary="Poisson functional representation with an exact stopping rule, on the exact Gaussian Q*_Y, beta*",
            factory=_FACTORY,
            defaults={"method": "pfr", "channel": "exact", **_SEARCH},
            checks=_CHECKS,
            distortions=("squared_error",),
            requires=("gaussian",),
        ),
        CodecRecord(
            name="orc",
            summary="Ordered random coding with N candidates, on the exact Gaussian Q*_Y, beta*",
            factory=_FACTORY,
            defaults={"method": "orc", "channel": "exact", **_SEARCH},
            checks=_CHECKS,
            distortions=("squared_error",),
            requires=("gaussian",),
        ),
        CodecRecord(
            name="pfr-nerd",
            summary="NERD-RCC: PFR with N candidates on the Q*_Y and beta* of a NERD estimator trained on the source",
            factory=_FACTORY,
            extras=("torch",),
            defaults={"method": "pfr", "channel": "nerd", **_SEARCH, **_NERD},
            checks=_NERD_CHECKS,
            profiles=_NERD_PROFILES,
            distortions=("squared_error", "absolute_error"),
            curve=True,
            file_settings=("generator",),
            reads=("nerd",),
            resolve="rdbench_plugins.budgets:resolve_rcc",
        ),
        CodecRecord(
            name="orc-nerd",
            summary="NERD-RCC: ORC on the Q*_Y and beta* of a NERD estimator trained on the source",
            factory=_FACTORY,
            extras=("torch",),
            defaults={"method": "orc", "channel": "nerd", **_SEARCH, **_NERD},
            checks=_NERD_CHECKS,
            profiles=_NERD_PROFILES,
            distortions=("squared_error", "absolute_error"),
            curve=True,
            file_settings=("generator",),
            reads=("nerd",),
            resolve="rdbench_plugins.budgets:resolve_rcc",
        ),
    ]
