"""Built-in plugin ``sandwich``: empirical upper and lower bounds on R(D) from samples.

After Yang & Mandt, "Towards Empirical Sandwich Bounds on the Rate-Distortion Function"
(ICLR 2022), discussed in Sec. IV-D of the NERD paper. ``sandwich-upper`` trains a
beta-VAE (MLPs for vector sources, convolutions for (C, H, W) images) and reports its
(D, E[KL]) point on held-out samples (:mod:`.upper`); ``sandwich-lower`` trains Csiszar's dual
function u (and, for a source without an exact R(D), the slope lambda) and reports the
lower-bound line R_L(D) = intercept - lambda D, clipped at 0 (:mod:`.lower`). This module only
declares the records (no torch import).

Both are curve methods: one cell per source holds all its targets, each after the first
warm-started from the previous target's network with ``warm_fraction`` of the steps
(``benchmarks/sandwich_curve.py`` compares them with separate fits). The default profile's
budgets are sized for a CPU (``benchmarks/suite_times.py`` prints what they cost):
``sandwich-upper`` batches of 128 and 32 conv channels for images, ``sandwich-lower`` 1000
steps and 6 evaluation batches.
"""

from __future__ import annotations

from rdbench import EstimatorRecord, hookimpl
from rdbench.settings import choice, number, whole
from rdbench_plugins.budgets import DTYPES

_MODULE = "rdbench_plugins.sandwich"


@hookimpl
def rdbench_estimators() -> list[EstimatorRecord]:
    return [
        EstimatorRecord(
            name="sandwich-upper",
            summary=(
                "Sandwich upper bound (Yang & Mandt 2022): beta-VAE (MLP, or conv for images) with a "
                "factorized Gaussian-mixture prior; (D, E[KL]) on held-out samples, +-2 SE"
            ),
            factory=f"{_MODULE}.upper:SandwichUpper",
            extras=("torch",),
            distortions=("squared_error", "absolute_error"),
            resolve="rdbench_plugins.budgets:resolve_sandwich_upper",
            defaults={
                "steps": None,
                "batch_size": 128,
                "lr": 2e-3,
                "n_train": 50_000,
                "n_val": 20_000,
                "n_test": 20_000,
                "latent": None,
                "hidden": None,
                "layers": 2,
                "components": 8,
                "calibration_rounds": 3,
                "warm_fraction": 0.4,
                "train_dtype": None,
                "device": "cpu",
            },
            checks={
                **{key: whole(minimum=1) for key in ("steps", "batch_size", "n_train", "n_val", "latent", "hidden")},
                "train_dtype": choice(*DTYPES),
                "n_test": whole(minimum=2),
                "layers": whole(minimum=0),
                "components": whole(minimum=1),
                "calibration_rounds": whole(minimum=0),
                "lr": number(above=0),
                "warm_fraction": number(above=0, maximum=1),
            },
            curve=True,
            profiles={
                "smoke": {"steps": 250, "n_train": 4096, "n_val": 1024, "n_test": 4096, "hidden": 32},
                "paper": {"steps": 30_000, "batch_size": 512, "lr": 1e-3, "n_train": 200_000, "n_test": 100_000},
            },
        ),
        EstimatorRecord(
            name="sandwich-lower",
            summary=(
                "Sandwich lower bound (Yang & Mandt 2022): Csiszar dual with a neural log u, exhaustive "
                "Gaussian-mixture mode search, unbiased linearization, slope learned without an exact R(D); "
                "squared error only"
            ),
            factory=f"{_MODULE}.lower:SandwichLower",
            extras=("torch",),
            distortions=("squared_error",),
            resolve="rdbench_plugins.budgets:resolve_sandwich_lower",
            defaults={
                "steps": 1000,
                "k": 4096,
                "train_k": 2048,
                "lr": 1e-2,
                "n_train": 50_000,
                "hidden": 32,
                "layers": 2,
                "train_starts": None,
                "train_iterations": None,
                "eval_batches": 6,
                "alpha_batches": 2,
                "max_iterations": 2000,
                "tolerance": 1e-4,
                "lambda_lr": 0.05,
                "warm_fraction": 0.4,
                "device": "cpu",
            },
            checks={
                **{
                    key: whole(minimum=1)
                    for key in ("steps", "n_train", "hidden", "train_starts", "train_iterations", "alpha_batches")
                },
                **{key: whole(minimum=2) for key in ("k", "train_k", "eval_batches")},
                "layers": whole(minimum=0),
                "max_iterations": whole(minimum=1),
                **{key: number(above=0) for key in ("lr", "tolerance", "lambda_lr")},
                "warm_fraction": number(above=0, maximum=1),
            },
            curve=True,
            profiles={
                "smoke": {
                    "steps": 200,
                    "k": 256,
                    "train_k": 256,
                    "n_train": 4096,
                    "eval_batches": 8,
                    "alpha_batches": 2,
                },
                "paper": {
                    "steps": 10_000,
                    "k": 16_384,
                    "train_k": 8192,
                    "n_train": 200_000,
                    "eval_batches": 40,
                    "alpha_batches": 10,
                },
            },
        ),
    ]
