"""Built-in plugin ``ntc``: nonlinear transform coding codecs with real bitstreams.

``ntc`` codes each realization with learned transforms, integer rounding and a learned
factorized density (Ballé et al. 2021); ``block-ntc`` does the same on blocks of B i.i.d.
realizations (paper Sec. VI-A). Both range-code the evaluation set as one stream through
:mod:`rdbench.entropy_coding`. Both are curve codecs: one cell fits all targets of a source,
each warm-started from the one before (``NTC.fit_curve``). This module only declares the
records (no torch import).
"""

from __future__ import annotations

from rdbench import CodecRecord, hookimpl
from rdbench.settings import choice, number, whole
from rdbench_plugins.budgets import DTYPES

_MODULE = "rdbench_plugins.ntc"
_DEFAULTS = {
    "steps": None,
    "batch_size": 256,
    "lr": 2e-3,
    "n_train": 50_000,
    "n_val": 10_000,
    "latent": None,
    "hidden": None,
    "finetune_steps": None,
    "density_steps": None,
    "quantization": "noise",
    "calibration_rounds": 3,
    "warm_fraction": None,
    "tail_mass": 1e-6,
    "max_support": 4095,
    "precision": 16,
    "train_dtype": None,
    "device": "cpu",
}
#: How block-NTC lays out a block of B images (C, H, W): stacked as channels (B*C, H, W), or
#: stitched into a sqrt(B) x sqrt(B) grid as the paper does (:class:`.block.BlockSource`).
LAYOUTS: tuple[str, ...] = ("grid", "channels")
#: The quantization proxies NTC trains with (:mod:`.model`).
QUANTIZATIONS: tuple[str, ...] = ("noise", "mixed")
_CHECKS = {
    **{key: whole(minimum=1) for key in ("steps", "batch_size", "n_train", "n_val", "latent", "hidden")},
    "finetune_steps": whole(minimum=0),
    "density_steps": whole(minimum=1),
    "lr": number(above=0),
    "quantization": choice(*QUANTIZATIONS),
    "calibration_rounds": whole(minimum=0),
    "warm_fraction": number(above=0, maximum=1),
    "tail_mass": number(above=0, below=0.5),
    "max_support": whole(minimum=1),
    "precision": whole(minimum=2, maximum=16),
    "train_dtype": choice(*DTYPES),
}
_PROFILES = {
    "smoke": {
        "steps": 250,
        "finetune_steps": 50,
        "density_steps": 100,
        "n_train": 2048,
        "n_val": 1024,
        "batch_size": 64,
        "calibration_rounds": 1,
    },
    "default": {},
    "paper": {
        "steps": 30_000,
        "finetune_steps": 5000,
        "density_steps": 2000,
        "n_train": 200_000,
        "n_val": 20_000,
        "batch_size": 512,
        "lr": 1e-3,
        "calibration_rounds": 4,
    },
}


@hookimpl
def rdbench_codecs() -> list[CodecRecord]:
    return [
        CodecRecord(
            name="ntc",
            summary=(
                "Nonlinear transform coding (Balle et al. 2021): learned transforms, rounding, factorized prior; "
                "range-coded stream"
            ),
            factory=f"{_MODULE}.codec:NTC",
            extras=("torch",),
            defaults=_DEFAULTS,
            checks=_CHECKS,
            profiles=_PROFILES,
            resolve="rdbench_plugins.budgets:resolve_ntc",
            distortions=("squared_error", "absolute_error"),
            curve=True,
        ),
        CodecRecord(
            name="block-ntc",
            summary=(
                "NTC on blocks of B i.i.d. realizations (vectors concatenated, images stitched 2x2; paper Sec. VI-A)"
            ),
            factory=f"{_MODULE}.block:BlockNTC",
            extras=("torch",),
            defaults={"block_size": 4, "layout": "grid", **_DEFAULTS},
            checks={"block_size": whole(minimum=1), "layout": choice(*LAYOUTS), **_CHECKS},
            profiles=_PROFILES,
            resolve="rdbench_plugins.budgets:resolve_block_ntc",
            distortions=("squared_error", "absolute_error"),
            curve=True,
        ),
    ]
