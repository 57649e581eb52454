"""Built-in plugin ``rcc``: lossy one-shot codes by reverse channel coding (paper Sec. V).

``pfr`` (Poisson functional representation) and ``orc`` (ordered random coding) simulate the
R(D)-achieving channel Q*_{Y|X} from candidates Y_i ~ Q*_Y drawn from a shared seed, and send
the selected index with a Zipf prefix code (Algorithms 2 and 3). ``pfr`` and ``orc`` use the
exact Q*_Y and beta* of a Gaussian source; ``pfr-nerd`` and ``orc-nerd`` use those of a NERD
estimator trained in ``fit`` (NERD-RCC). This module only declares the records; the codec
lives in :mod:`.codec`.
"""

from __future__ import annotations

from rdbench import PluginRecord, hookimpl

_FACTORY = "rdbench_plugins.rcc.codec:RCC"
_SEARCH = {
    "n_candidates": None,
    "orc_margin_bits": 8.0,
    "max_candidates": 2**22,
    "chunk_size": 2**14,
    "table_bits": None,
}
_NERD = {"nerd_profile": "default", "nerd": {}, "device": "cpu", "generator": None, "generator_rate_bits": None}
_NERD_PROFILES = {profile: {"nerd_profile": profile} for profile in ("smoke", "default", "paper")}


@hookimpl
def rdbench_codecs() -> list[PluginRecord]:
    return [
        PluginRecord(
            name="pfr",
            summary="Poisson functional representation with an exact stopping rule, on the exact Gaussian Q*_Y, beta*",
            factory=_FACTORY,
            defaults={"method": "pfr", "channel": "exact", **_SEARCH},
            distortions=("squared_error",),
            requires=("gaussian",),
        ),
        PluginRecord(
            name="orc",
            summary="Ordered random coding with N candidates, on the exact Gaussian Q*_Y, beta*",
            factory=_FACTORY,
            defaults={"method": "orc", "channel": "exact", **_SEARCH},
            distortions=("squared_error",),
            requires=("gaussian",),
        ),
        PluginRecord(
            name="pfr-nerd",
            summary="NERD-RCC: PFR on the Q*_Y and beta* of a NERD estimator trained on the source",
            factory=_FACTORY,
            extras=("torch",),
            defaults={"method": "pfr", "channel": "nerd", **_SEARCH, **_NERD},
            profiles=_NERD_PROFILES,
            distortions=("squared_error", "absolute_error"),
        ),
        PluginRecord(
            name="orc-nerd",
            summary="NERD-RCC: ORC on the Q*_Y and beta* of a NERD estimator trained on the source",
            factory=_FACTORY,
            extras=("torch",),
            defaults={"method": "orc", "channel": "nerd", **_SEARCH, **_NERD},
            profiles=_NERD_PROFILES,
            distortions=("squared_error", "absolute_error"),
        ),
    ]
