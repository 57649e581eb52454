"""The plugin module named by the ``rdbench`` entry point: records only, cheap to import."""

from __future__ import annotations

from rdbench import CodecRecord, EstimatorRecord, SourceRecord, hookimpl
from rdbench.settings import whole


@hookimpl
def rdbench_sources() -> list[SourceRecord]:
    return [
        SourceRecord(
            name="example-uniform",
            summary="X uniform on the unit cube [0, 1]^m (example plugin), squared error",
            factory="rdbench_example.source:UniformCube",
            defaults={"dimensions": 2},
            checks={"dimensions": whole(minimum=1)},
            distortions=("squared_error",),
            targets={"smoke": ("D/Dmax=0.05", "D/Dmax=0.2"), "default": ("D/Dmax=0.01", "D/Dmax=0.05", "D/Dmax=0.2")},
        )
    ]


@hookimpl
def rdbench_estimators() -> list[EstimatorRecord]:
    return [
        EstimatorRecord(
            name="example-slb",
            summary="Shannon lower bound h(X) - (m/2) log2(2 pi e D / m), h(X) by nearest neighbours (example plugin)",
            factory="rdbench_example.slb:ShannonLowerBound",
            defaults={"n_samples": 20_000, "neighbours": 4, "batches": 10},
            checks={"n_samples": whole(minimum=100), "neighbours": whole(minimum=1), "batches": whole(minimum=2)},
            profiles={"smoke": {"n_samples": 4000}},
            distortions=("squared_error",),
        )
    ]


@hookimpl
def rdbench_codecs() -> list[CodecRecord]:
    return [
        CodecRecord(
            name="example-usq",
            summary="Uniform scalar quantizer per component, range-coded with a fitted model (example plugin)",
            factory="rdbench_example.quantizer:UniformQuantizer",
            defaults={"n_train": 20_000, "precision": 16},
            checks={"n_train": whole(minimum=1), "precision": whole(minimum=8, maximum=24)},
            profiles={"smoke": {"n_train": 4000}},
            distortions=("squared_error", "absolute_error"),
        )
    ]
