"""Built-in plugin ``blahut-arimoto``: the classical R(D) estimator (paper Sec. I-A, IV-C).

This module only declares the record; the work lives in :mod:`.estimator` and
:mod:`.algorithm`.
"""

from __future__ import annotations

from rdbench import EstimatorRecord, hookimpl
from rdbench.settings import number, whole


@hookimpl
def rdbench_estimators() -> list[EstimatorRecord]:
    return [
        EstimatorRecord(
            name="blahut-arimoto",
            summary=(
                "Blahut-Arimoto on the exact discrete source, or on n samples' empirical "
                "distribution with Y = the samples (Fig. 1); stops on Blahut's dual certificate"
            ),
            factory="rdbench_plugins.blahut_arimoto.estimator:BlahutArimoto",
            defaults={
                "n_samples": 2000,
                "tol_bits": 1e-9,
                "max_iter": 10_000,
                "empirical_tol_bits": 1e-2,
                "empirical_max_iter": 200,
                "distortion_rtol": 1e-4,
                "chunk_bytes": 32 * 2**20,
            },
            checks={
                "n_samples": whole(minimum=1),
                "tol_bits": number(minimum=0),
                "max_iter": whole(minimum=1),
                "empirical_tol_bits": number(minimum=0),
                "empirical_max_iter": whole(minimum=1),
                "distortion_rtol": number(minimum=0),
                "chunk_bytes": whole(minimum=1),
            },
            curve=True,  # a source's targets share one problem and warm-start each other
            # An empirical iteration costs O(n^2) time (benchmarks/suite_times.py prints it per cell).
            profiles={
                "smoke": {"n_samples": 300},
                "default": {"n_samples": 2000},
                "paper": {"n_samples": 60_000, "empirical_max_iter": 100},
            },
        )
    ]
