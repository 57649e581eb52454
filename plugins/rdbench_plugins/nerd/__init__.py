"""Built-in plugin ``nerd``: the neural estimator of the rate-distortion function (paper Sec. III).

This module only declares the record (it must not import torch); the estimator lives in
:mod:`.estimator`. A trained generator is reloaded with
:func:`rdbench_plugins.nerd.storage.load_generator`.
"""

from __future__ import annotations

from rdbench import EstimatorRecord, hookimpl
from rdbench.settings import choice, number, whole
from rdbench_plugins.budgets import DTYPES


@hookimpl
def rdbench_estimators() -> list[EstimatorRecord]:
    return [
        EstimatorRecord(
            name="nerd",
            summary=(
                "NERD: a generator network trained on the dual of R(D) (Algorithm 1), read off fresh "
                "samples; an estimate, capped at log2 M for M generator samples"
            ),
            factory="rdbench_plugins.nerd.estimator:NERD",
            extras=("torch",),
            curve=True,
            resolve="rdbench_plugins.budgets:resolve_nerd",
            distortions=("squared_error", "absolute_error"),
            defaults={
                "device": "cpu",
                "n_train": 65536,
                "latent_dim": None,
                "hidden": None,
                "channels": None,
                "lr": 3e-3,
                "warm_lr": 1e-3,
                "window": None,
                "patience": 2,
                "tol_bits": 0.003,
                "lr_drops": None,
                "anneal_steps": 150,
                "max_steps": None,
                "pairs": None,
                "m_train_max": None,
                "n_eval": 4096,
                "n_eval_coarse": 131072,
                "m_eval_max": 2**17,
                "train_dtype": None,
            },
            checks={
                **{
                    key: whole(minimum=1)
                    for key in ("n_train", "latent_dim", "hidden", "channels", "window", "patience", "anneal_steps")
                },
                **{key: whole(minimum=1) for key in ("max_steps", "pairs", "m_train_max", "n_eval", "n_eval_coarse")},
                "m_eval_max": whole(minimum=1),
                "lr_drops": whole(minimum=0),
                "lr": number(above=0),
                "warm_lr": number(above=0),
                "tol_bits": number(above=0),
                "train_dtype": choice(*DTYPES),
            },
            profiles={
                "smoke": {
                    "n_train": 8192,
                    "window": 25,
                    "max_steps": 150,
                    "pairs": 2**16,
                    "m_train_max": 512,
                    "n_eval": 512,
                    "n_eval_coarse": 4096,
                    "m_eval_max": 4096,
                },
                "paper": {
                    "max_steps": 10000,
                    "pairs": 2**20,
                    "m_train_max": 40000,
                    "n_eval": 8192,
                    "n_eval_coarse": 2**18,
                    "m_eval_max": 2**18,
                },
            },
        )
    ]
