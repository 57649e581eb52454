"""The conformance kit (rdbench.testing) over every built-in plugin, and the kit catching faults."""

from __future__ import annotations

import pytest
from conftest import FAST_NERD

from rdbench.registry import BUILTIN, get_registry
from rdbench.testing import conformance


def _builtin(kind: str) -> list[str]:
    return [name for name, e in get_registry().entries(kind).items() if e.plugin.distribution == BUILTIN]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The neural plugins train on one thread (the suite's speed target is 2 cores)."""
    try:
        import torch
    except ImportError:
        yield
        return

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


test_builtin_plugins = conformance(
    sources=_builtin("source"),
    estimators=_builtin("estimator"),
    codecs=_builtin("codec"),
    on=("gaussian", "bernoulli"),
    profile="smoke",
    settings={"pfr-nerd": {"nerd": FAST_NERD}, "orc-nerd": {"nerd": FAST_NERD}},
)


# -- the kit catches faults ----------------------------------------------------------------

#: A third-party plugin with one fault per check it should fail (records cheap to import).
FAULTY_RECORDS = """
from rdbench import CodecRecord, EstimatorRecord, SourceRecord, hookimpl

_MODULE = "toy_faulty_impl"


@hookimpl
def rdbench_sources():
    common = {"distortions": ("squared_error",), "targets": {"default": ("D=0.5",)}}
    return [
        SourceRecord(name="toy-leaky", summary="train = test", factory=f"{_MODULE}:Leaky", **common),
        SourceRecord(name="toy-noisy", summary="global RNG", factory=f"{_MODULE}:Noisy", **common),
        SourceRecord(name="toy-concave", summary="a concave R(D)", factory=f"{_MODULE}:Concave", **common),
    ]


@hookimpl
def rdbench_estimators():
    return [EstimatorRecord(name="toy-overconfident", summary="above its ceiling", factory=f"{_MODULE}:Overconfident")]


@hookimpl
def rdbench_codecs():
    return [
        CodecRecord(name="toy-fragile", summary="no ValueError", factory=f"{_MODULE}:Fragile"),
        CodecRecord(name="toy-stateful", summary="decodes from state", factory=f"{_MODULE}:Stateful"),
    ]
"""
FAULTY_IMPL = """
import math
import struct
import time

import numpy as np

from rdbench import Bits, Codec, Estimator, RDPoint, Source, SquaredError


class Leaky(Source):
    shape = ()
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return np.random.default_rng(seed).standard_normal(n)  # ignores split


class Noisy(Leaky):
    def sample(self, n, seed, split="train"):
        return np.random.standard_normal(n)  # the global generator


class Fine(Leaky):
    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).standard_normal(n)


class Concave(Fine):
    @property
    def d_max(self):
        return 1.0

    def rate_distortion(self, distortion):
        return max(0.0, 1.0 - distortion**2)


class Overconfident(Estimator):
    def estimate(self, source, target, seed):
        point = RDPoint(3.0, target.distortion, "upper", rate_lower_bits=2.0, rate_upper_bits=1.0)
        point.rate_ceiling_bits = 2.0
        return [point]


class Fragile(Codec):
    coding = "stream"

    def fit(self, source, target, seed):
        self.m = int(np.prod(source.shape))

    def encode(self, x):
        return bytes([len(x)]) + np.asarray(x, "<f8").tobytes()

    def decode(self, message):
        while not message:  # hangs on an empty message
            time.sleep(0.01)
        n = message[0]
        return np.array(struct.unpack(f"<{n * self.m}d", message[1:])).reshape(n, self.m)  # struct.error


class Stateful(Codec):
    coding = "one-shot"

    def fit(self, source, target, seed):
        self.sent = []

    def encode(self, x):
        self.sent.append(np.asarray(x))
        return Bits(b"\\x80", 1)

    def decode(self, message):
        if message != Bits(b"\\x80", 1):
            raise ValueError("not a message")
        return self.sent.pop(0) if self.sent else np.zeros(2)  # a copy made before encode has no state
"""
HEAVY_RECORDS = """
import toy_heavy  # a heavy dependency imported where the records are declared
from rdbench import SourceRecord, hookimpl


@hookimpl
def rdbench_sources():
    return [SourceRecord(name="toy-heavy", summary="imports toy_heavy", factory="toy_faulty_impl:Fine")]
"""


def _outcome(kit, case) -> str:
    try:
        kit.run(case)
    except pytest.skip.Exception:
        return "skipped"
    except Exception:  # noqa: BLE001 - AssertionError, pytest's Failed, a plugin's exception
        return "failed"
    except pytest.fail.Exception:
        return "failed"
    return "passed"


def test_the_kit_fails_each_fault_by_record_and_check(plugin_site):
    plugin_site.add("rdbench-faulty", {"toy-faulty": "toy_faulty"}, {"toy_faulty": FAULTY_RECORDS})
    plugin_site.add(
        "rdbench-heavy",
        {"toy-heavy": "toy_heavy_records"},
        {"toy_heavy_records": HEAVY_RECORDS, "toy_heavy": "", "toy_faulty_impl": FAULTY_IMPL},
    )
    get_registry(refresh=True)
    test = conformance(
        sources=["toy-leaky", "toy-noisy", "toy-concave", "toy-heavy"],
        estimators=["toy-overconfident"],
        codecs=["toy-fragile", "toy-stateful", "no-such-codec"],
        on=["gaussian"],
        heavy=("torch", "toy_heavy"),
        timeout=0.5,
    )
    outcomes = {case.id: _outcome(test.kit, case) for case in test.cases}
    failed = {case for case, outcome in outcomes.items() if outcome == "failed"}
    assert failed == {
        "source:toy-leaky:splits-independent",
        "source:toy-noisy:deterministic",
        "source:toy-concave:exact-rd",
        "source:toy-heavy:cheap-import",
        "estimator:toy-overconfident/gaussian:bounds",
        "estimator:toy-overconfident/gaussian:ceiling",
        "codec:toy-fragile/gaussian:corrupted",
        "codec:toy-fragile/gaussian:truncated",
        "codec:toy-fragile/gaussian:empty",
        "codec:toy-fragile/gaussian:extended",
        "codec:toy-stateful/gaussian:round-trip",
        "codec:no-such-codec:record",
    }
    assert (
        outcomes["source:toy-leaky:split-size"] == "skipped" and outcomes["codec:toy-fragile/gaussian:rate"] == "passed"
    )
