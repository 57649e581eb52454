"""Built-in plugin ``wgd``: Wasserstein gradient descent on the rate functional (Yang, Eckstein,
Nutz and Mandt, "Estimating the Rate-Distortion Function by Wasserstein Gradient Descent",
NeurIPS 2023).

This module only declares the record (it must not import torch); the estimator lives in
:mod:`.estimator`. ``--set wgd.hybrid=true`` runs the paper's hybrid (a Blahut-Arimoto weight
step after every particle move).
"""

from __future__ import annotations

from rdbench import EstimatorRecord, hookimpl
from rdbench.settings import choice, number, whole


@hookimpl
def rdbench_estimators() -> list[EstimatorRecord]:
    return [
        EstimatorRecord(
            name="wgd",
            summary=(
                "WGD: n particles moved by the Wasserstein gradient of the rate functional (closed-form "
                "inner BA step), read off fresh samples; an estimate, capped at log2 n"
            ),
            factory="rdbench_plugins.wgd.estimator:WGD",
            extras=("torch",),
            curve=True,
            resolve="rdbench_plugins.budgets:resolve_wgd",
            distortions=("squared_error", "absolute_error"),
            defaults={
                "n_particles": 512,
                "steps": None,
                "warm_steps": None,
                "batch": 4096,
                "n_train": 65536,
                "lr": 0.25,
                "decay": 0.1,
                "hybrid": False,
                "window": 50,
                "tol_bits": 0.01,
                "n_eval": 32768,
                "device": "cpu",
            },
            checks={
                **{key: whole(minimum=1) for key in ("n_particles", "steps", "batch", "n_train", "window", "n_eval")},
                "warm_steps": whole(minimum=0),
                "lr": number(above=0, maximum=1),
                "decay": number(above=0, maximum=1),
                "tol_bits": number(above=0),
                "hybrid": choice(True, False),
            },
            profiles={
                "smoke": {
                    "n_particles": 128,
                    "steps": 60,
                    "warm_steps": 30,
                    "batch": 512,
                    "n_train": 4096,
                    "n_eval": 1024,
                },
                "paper": {"n_particles": 4096, "steps": 5000, "warm_steps": 2000, "batch": 10000, "n_train": 100_000},
            },
        )
    ]
