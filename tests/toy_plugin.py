"""A third-party-style plugin used by the tests: a real codec and misbehaving estimators.

Installed into a throwaway site folder by the ``toy_plugins`` fixture, so it is discovered
through the ``rdbench`` entry-point group like any other plugin.
"""

from __future__ import annotations

import math
import time

import numpy as np

from rdbench import (
    Codec,
    CodecRecord,
    Estimator,
    EstimatorRecord,
    RDPoint,
    Source,
    SourceRecord,
    SquaredError,
    hookimpl,
)


class UniformSource(Source):
    """Uniform on [0, 1]^m, squared error; R(D) unknown, D_max = m/12."""

    def __init__(self, m: int = 2) -> None:
        self.shape = (m,)
        self.distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).random((n, *self.shape))

    @property
    def d_max(self):
        return self.shape[0] / 12


class FixedRateQuantizer(Codec):
    """Uniform scalar quantizer on [-4, 4] with ``bits`` bits per component, fixed-length code."""

    coding = "stream"

    def __init__(self, bits: int = 4, one_shot: bool = False) -> None:
        self.bits = bits
        if one_shot:
            self.coding = "one-shot"

    def fit(self, source, target, seed):
        self.shape = source.shape
        self.levels = 2**self.bits
        self.step = 8.0 / self.levels

    def encode(self, x):
        idx = np.clip(np.floor((np.asarray(x) + 4.0) / self.step), 0, self.levels - 1).astype(np.uint8)
        return bytes([self.bits]) + idx.tobytes()

    def decode(self, message):
        if len(message) < 1 or message[0] != self.bits:
            raise ValueError("corrupted header")
        idx = np.frombuffer(message[1:], dtype=np.uint8)
        shape = self.shape if self.coding == "one-shot" else (-1, *self.shape)
        return ((idx.astype(np.float64) + 0.5) * self.step - 4.0).reshape(shape)


class Misbehaving(Estimator):
    """An estimator that fails in the way ``mode`` says."""

    def __init__(self, mode: str = "ok", seconds: float = 0.0, megabytes: int = 0, offset: float = 0.0) -> None:
        self.mode, self.seconds, self.megabytes, self.offset = mode, seconds, megabytes, offset

    def estimate(self, source, target, seed):
        time.sleep(self.seconds)
        if self.megabytes:
            np.ones(self.megabytes * 2**17).sum()  # touched, so resident
        if self.mode == "raise":
            raise RuntimeError("boom from the toy estimator")
        if self.mode == "nan":
            return [RDPoint(rate_bits=math.nan, distortion=1.0, bound="estimate")]
        if self.mode == "negative":
            return [RDPoint(rate_bits=-1.0, distortion=1.0, bound="upper")]
        if self.mode == "exit":
            raise SystemExit(0)
        rng = np.random.default_rng(seed)
        d = target.distortion if target.distortion is not None else 1.0
        return [RDPoint(rate_bits=float(rng.random()) + self.offset, distortion=d, bound="estimate")]


def make_misbehaving(**settings):
    return Misbehaving(**settings)


class Derived(Estimator):
    """Returns the points of estimator ``name`` with ``settings`` through :func:`rdbench.cells.estimate`."""

    def __init__(self, settings: dict | None = None, name: str = "toy-ok") -> None:
        self.settings, self.name = settings or {}, name

    def estimate(self, source, target, seed):
        from rdbench.cells import estimate

        return estimate(self.name, self.settings, source, [target], seed)[0]


class Curve(Estimator):
    """A curve method: one call for all targets, each point saying how many it was given."""

    def estimate(self, source, target, seed):
        return self.curve(source, [target], seed)[0]

    def curve(self, source, targets, seed):
        return [
            [
                RDPoint(
                    rate_bits=1.0 / target.distortion,
                    distortion=target.distortion,
                    bound="estimate",
                    details={"targets_in_call": len(targets)},
                )
            ]
            for target in targets
        ]


class CurveQuantizer(FixedRateQuantizer):
    """A curve codec: more bits at each later target; its encoder fails at target ``fail_at``
    (0-based), and fit_curve itself raises at ``raise_at``."""

    def __init__(self, fail_at: int = -1, raise_at: int = -1) -> None:
        super().__init__()
        self.fail_at, self.raise_at, self.failing = fail_at, raise_at, False

    def fit_curve(self, source, targets, seed):
        for i, target in enumerate(targets):
            if i == self.raise_at:
                raise RuntimeError(f"cannot fit target {i}")
            self.bits, self.failing = 2 + i, i == self.fail_at
            self.fit(source, target, seed)
            yield target

    def encode(self, x):
        if self.failing:
            raise ValueError("the encoder broke")
        return super().encode(x)


@hookimpl
def rdbench_sources():
    return [
        SourceRecord(
            "toy-uniform",
            "uniform on the unit square, squared error",
            "toy_plugin:UniformSource",
            targets={"default": ("D/Dmax=0.5",)},
        ),
        SourceRecord(
            "toy-uniform3",
            "uniform on the unit square, three default targets",
            "toy_plugin:UniformSource",
            targets={"default": ("D/Dmax=0.25", "D/Dmax=0.5", "D/Dmax=0.75")},
        ),
    ]


@hookimpl
def rdbench_estimators():
    return [
        EstimatorRecord(
            "toy-ok", "returns a random point (plus offset)", "toy_plugin:make_misbehaving", defaults={"offset": 0.0}
        ),
        EstimatorRecord("toy-raise", "raises", "toy_plugin:make_misbehaving", defaults={"mode": "raise"}),
        EstimatorRecord("toy-nan", "returns NaN", "toy_plugin:make_misbehaving", defaults={"mode": "nan"}),
        EstimatorRecord(
            "toy-negative", "returns a negative rate", "toy_plugin:make_misbehaving", defaults={"mode": "negative"}
        ),
        EstimatorRecord("toy-slow", "sleeps", "toy_plugin:make_misbehaving", defaults={"seconds": 30.0}),
        EstimatorRecord(
            "toy-derived",
            "toy-ok's points with settings, read back when the run has them",
            "toy_plugin:Derived",
            defaults={"name": "toy-ok", "settings": {}},
            reads=("toy-ok",),
        ),
        EstimatorRecord(
            "toy-derived-slow",
            "toy-slow's points (1.5 s), read back when the run has them",
            "toy_plugin:Derived",
            defaults={"name": "toy-slow", "settings": {"seconds": 1.5}},
            reads=("toy-slow",),
        ),
        EstimatorRecord(
            "toy-hog", "holds memory for a moment", "toy_plugin:make_misbehaving", defaults={"megabytes": 400}
        ),
        EstimatorRecord("toy-exit", "calls sys.exit", "toy_plugin:make_misbehaving", defaults={"mode": "exit"}),
        EstimatorRecord("toy-curve", "all targets in one call", "toy_plugin:Curve", curve=True),
    ]


@hookimpl
def rdbench_codecs():
    return [
        CodecRecord("toy-quantizer", "fixed-rate uniform scalar quantizer (stream)", "toy_plugin:FixedRateQuantizer"),
        CodecRecord(
            "toy-quantizer-oneshot",
            "fixed-rate uniform scalar quantizer (one message per realization)",
            "toy_plugin:FixedRateQuantizer",
            defaults={"one_shot": True},
        ),
        CodecRecord(
            "toy-curve-codec",
            "a curve codec that can fail at one target",
            "toy_plugin:CurveQuantizer",
            defaults={"fail_at": -1, "raise_at": -1},
            curve=True,
        ),
    ]
