"""rdbench.testing: a conformance kit for plugin authors, registered as a pytest plugin.

One line in a test module of a plugin's own suite checks its records the way the runner
will use them::

    # tests/test_rdbench_conformance.py of your package
    from rdbench.testing import conformance

    test_my_plugin = conformance(
        sources=["my-source"],  # its own checks, and what the methods below run on
        estimators=["my-est"],
        codecs=["my-codec"],
        profile="smoke",  # each record's profile settings (the default)
        settings={"my-est": {"steps": 20}},  # per-name overrides, for test speed
    )

``conformance`` returns a test function parametrized by case, one test per record and
check, named ``KIND:NAME[/SOURCE]:CHECK`` (``codec:my-codec/my-source:truncated``), so a
failure names both and ``pytest -k my-codec`` selects a record. Records are looked up in the
installed registry (``rdbench.registry.get_registry()``); a name no plugin registers fails.
A record that cannot run here (missing requirements of its ``extras``, such as torch, or a
dataset's missing files) skips every check but ``record`` and ``cheap-import``. Methods run on
``on`` (default: the ``sources`` given, else ``gaussian``), each only on the sources whose
distortion measure and features it accepts; estimators at the source's targets for the
profile (``targets={"NAME": [...]}`` overrides them per method or source name), codecs at
the first of them. Settings are the record's ``profile`` settings updated by
``settings[name]``, validated and resolved as the runner does at plan time. Work is shared
between a record's checks (one fit per codec and source, one estimate per estimator and
source). Known failures: ``xfail={"codec:my-codec/*:extended": "why"}`` (case ids or
``fnmatch`` patterns; strict, so a case that starts to pass fails until its entry goes).

Checks (``rdbench.testing.CHECKS``):

* every record: ``record`` (``record.validate()``, and the kit's settings pass its checks);
  ``cheap-import`` (in a subprocess, building the registry with only the record's plugin
  enabled registers the record and imports none of ``heavy``, default ``("torch",)``).
* sources: ``sample-shape`` ((n, *shape) numeric and finite, both splits); ``distortion``
  (d(x, x) = 0, d >= 0, shape (n,), the measure the record declares); ``deterministic``
  (``sample`` a pure function of (n, seed, split), across instances); ``splits-independent``
  (train and test of one seed differ, share no realization, are uncorrelated);
  ``split-size`` (a finite split: ``sample(split_size)`` holds each of its realizations
  once, whatever the seed, and larger draws no others); ``exact-rd`` (where R(D) is exact:
  finite, >= 0, non-increasing and convex on a grid of (0, D_max], R(D_max) = 0 within
  1e-9, ``distortion_at_rate`` inverts ``rate_distortion``); ``targets`` (every declared
  target resolves to a distortion in (0, D_max]); ``features`` (a source declaring
  ``gaussian`` is a :class:`~rdbench.interfaces.GaussianLaw` that its samples follow).
* estimators: ``points`` (one non-empty list of valid RDPoints per target, storable as the
  runner stores them); ``bounds`` (``estimate``, ``upper`` or ``lower``; rate >= 0 unless a
  lower bound; rate_lower_bits <= rate_upper_bits); ``ceiling`` (rate <= rate_ceiling_bits
  + 1e-6 where declared); ``deterministic`` (a second instance, same seed: the same numbers).
* codecs (fitted once per source, by the record's protocol: ``fit_curve`` for a curve
  record): ``fit`` (fit succeeds and the fitted codec deep-copies); ``round-trip`` (the
  test realizations encoded, then decoded by a deep copy taken right after fit, equal the
  encoder's own reconstruction, whose distortion :func:`rdbench.evaluation.evaluate_codec`'s
  protocol reports); ``rate`` (the reported rate is the messages' length, ``Bits.length``,
  per realization); ``deterministic`` (another copy, and a fresh fit with the same seed,
  write the same bytes); ``corrupted``, ``truncated``, ``empty``, ``extended`` (damaged
  messages, each decoded by a fresh copy within ``timeout`` seconds, raise ValueError; a
  one-shot codec may also decode a flipped bit to some valid reproduction of the source's
  shape, since a prefix code cannot tell).

Options (this module is the ``rdbench`` pytest plugin, ``pytest -p no:rdbench`` disables
it): ``--rdbench-profile`` runs every kit at another profile (e.g. ``default``) and
``--rdbench-timeout`` changes the time bound of a damaged-message decode.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rdbench.interfaces import SPLITS, Bits, Codec, Estimator, GaussianLaw, RDPoint, Source
from rdbench.records import PROFILES
from rdbench.registry import Entry, get_registry
from rdbench.targets import Target

#: The checks of each kind, in the order the tests are generated.
CHECKS: dict[str, tuple[str, ...]] = {
    "record": ("record", "cheap-import"),
    "source": (
        "sample-shape",
        "distortion",
        "deterministic",
        "splits-independent",
        "split-size",
        "exact-rd",
        "targets",
        "features",
    ),
    "estimator": ("points", "bounds", "ceiling", "deterministic"),
    "codec": ("fit", "round-trip", "rate", "deterministic", "corrupted", "truncated", "empty", "extended"),
}
#: Slack, in bits, of ``rate_bits <= rate_ceiling_bits``.
CEILING_SLACK_BITS = 1e-6
#: Values one split-size draw may hold (larger splits are checked on a draw of this size).
_MAX_DRAW_VALUES = 1 << 23


# -- the pytest plugin -----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """The kit's command-line options (pytest hook)."""
    group = parser.getgroup("rdbench", "rdbench conformance kit (rdbench.testing)")
    group.addoption(
        "--rdbench-profile",
        choices=PROFILES,
        default=None,
        help="run every rdbench.testing.conformance kit at this profile instead of its own",
    )
    group.addoption(
        "--rdbench-timeout",
        type=float,
        default=None,
        help="seconds a codec may take to decode one damaged message (default: the kit's, 10)",
    )


@dataclass(frozen=True)
class Case:
    """One test: ``check`` of record ``kind``/``name`` (kind ``record`` for the record checks),
    on source ``on`` for an estimator or codec."""

    kind: str
    name: str
    check: str
    on: str | None = None
    #: the record's kind for the record checks
    of: str | None = None

    @property
    def id(self) -> str:
        kind = self.of if self.kind == "record" else self.kind
        where = f"/{self.on}" if self.on else ""
        return f"{kind}:{self.name}{where}:{self.check}"


def conformance(
    *,
    sources: Sequence[str] = (),
    estimators: Sequence[str] = (),
    codecs: Sequence[str] = (),
    on: Sequence[str] | None = None,
    profile: str = "smoke",
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    targets: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    n_test: int = 100,
    heavy: Sequence[str] = ("torch",),
    timeout: float = 10.0,
    xfail: Mapping[str, str] | None = None,
) -> Callable[..., None]:
    """A pytest test function that checks the named records; assign it to a ``test_*`` name.

    sources / estimators / codecs: record names. on: sources the estimators and codecs run
    on (default: ``sources``, else ``("gaussian",)``); a method is paired only with those it
    accepts. profile: whose settings and targets (``smoke``, ``default``, ``paper``).
    settings: per record name, overrides of its profile settings. targets: per method or
    source name, target texts (``R=1``) instead of the source's profile targets; codecs use
    the first. seed: of every fit, estimate and sample. n_test: most test realizations a
    codec codes (also capped by the test split's size and ``Codec.max_test``). heavy: module
    names that building the registry must not import. timeout: seconds per decode of a
    damaged message. xfail: known failures, case id (or ``fnmatch`` pattern) -> reason;
    strict, so a case that starts to pass fails until its entry is removed.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    for label, names in (("sources", sources), ("estimators", estimators), ("codecs", codecs)):
        if isinstance(names, str):
            raise TypeError(f"{label} must be a list of names, got the string {names!r}")
    kit = _Kit(
        profile=profile,
        settings={k: dict(v) for k, v in (settings or {}).items()},
        targets={k: tuple(v) for k, v in (targets or {}).items()},
        seed=int(seed),
        n_test=int(n_test),
        heavy=tuple(heavy),
        timeout=float(timeout),
    )
    ons = tuple(on) if on is not None else (tuple(sources) or ("gaussian",))
    cases = kit.cases(tuple(sources), tuple(estimators), tuple(codecs), ons)

    known = dict(xfail or {})
    unmatched = [k for k in known if not any(fnmatch.fnmatchcase(c.id, k) for c in cases)]
    if unmatched:
        raise ValueError(f"xfail names no case: {', '.join(unmatched)} (case ids look like codec:NAME/SOURCE:CHECK)")
    params = [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(reason=known[k], strict=True) for k in known if fnmatch.fnmatchcase(case.id, k)],
        )
        for case in cases
    ]

    @pytest.mark.parametrize("rdbench_case", params)
    def test_rdbench_conformance(rdbench_case: Case, request: pytest.FixtureRequest) -> None:
        kit.run(rdbench_case, request.config)

    test_rdbench_conformance.kit = kit  # type: ignore[attr-defined]
    test_rdbench_conformance.cases = cases  # type: ignore[attr-defined]
    return test_rdbench_conformance


# -- the kit ---------------------------------------------------------------------------------


class _Failed(Exception):
    """A cached step failed: later checks that need it fail naming it."""


@dataclass
class _Fitted:
    entry: Entry
    settings: dict[str, Any]
    source: Source
    target: Target
    codec: Codec  # a deep copy taken right after fit, never used itself
    x: np.ndarray  # the test realizations coded, (n, *shape)


class _Kit:
    def __init__(
        self,
        *,
        profile: str,
        settings: dict[str, dict[str, Any]],
        targets: dict[str, tuple[str, ...]],
        seed: int,
        n_test: int,
        heavy: tuple[str, ...],
        timeout: float,
    ) -> None:
        self.default_profile = profile
        self.settings = settings
        self.targets = targets
        self.seed = seed
        self.n_test = n_test
        self.heavy = heavy
        self.default_timeout = timeout
        self.profile = profile
        self.timeout = timeout
        self._memo: dict[tuple[Any, ...], tuple[bool, Any]] = {}

    # -- cases -------------------------------------------------------------------------------

    def cases(
        self, sources: tuple[str, ...], estimators: tuple[str, ...], codecs: tuple[str, ...], on: tuple[str, ...]
    ) -> list[Case]:
        registry = get_registry()
        found: list[Case] = []
        for kind, names in (("source", sources), ("estimator", estimators), ("codec", codecs)):
            for name in dict.fromkeys(names):
                if name not in registry.entries(kind):  # its record check fails naming what exists
                    found.append(Case("record", name, "record", of=kind))
                    continue
                found += [Case("record", name, check, of=kind) for check in CHECKS["record"]]
                if kind == "source":
                    found += [Case(kind, name, check) for check in CHECKS[kind]]
                    continue
                for source in dict.fromkeys(on):
                    method = registry.entries(kind)[name]
                    source_entry = registry.entries("source").get(source)
                    if source_entry is not None and method.record.mismatch(source_entry.record) is not None:
                        continue  # the runner would never pair them
                    found += [Case(kind, name, check, on=source) for check in CHECKS[kind]]
        return found

    def run(self, case: Case, config: pytest.Config | None = None) -> None:
        """Run one case (pytest.fail / pytest.skip on the outcome)."""
        self.profile = _option(config, "rdbench_profile") or self.default_profile
        self.timeout = _option(config, "rdbench_timeout") or self.default_timeout
        check = getattr(self, f"_{case.kind}_{case.check.replace('-', '_')}")
        try:
            check(case)
        except _Failed as exc:
            failure = str(exc)
        except AssertionError as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is None or tb.tb_frame.f_code.co_filename != __file__:
                raise  # the plugin's own assertion: its traceback tells more
            failure = str(exc).split("\nassert ")[0]  # the kit's message, without pytest's rewriting
        else:
            return
        pytest.fail(failure, pytrace=False)

    # -- shared steps, each computed once ----------------------------------------------------

    def _once(self, key: tuple[Any, ...], compute: Callable[[], Any], what: str, own: bool) -> Any:
        """compute() cached under key (its exception too). A check that does not own the step
        fails with _Failed naming ``what`` instead of the step's own traceback."""
        key = (self.profile, *key)
        if key not in self._memo:
            try:
                self._memo[key] = (True, compute())
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - replayed in every check that needs it
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if ok:
            return value
        if own or isinstance(value, (pytest.skip.Exception, _Failed)):
            raise value
        raise _Failed(f"cannot check: {what} failed: {_describe(value)}")

    def _entry(self, kind: str, name: str, *, runnable: bool = True) -> Entry:
        entry = get_registry().get(kind, name)  # PluginError names what exists
        reason = entry.unavailable_reason() if runnable else None
        if reason is not None:
            pytest.skip(f"{kind} {name!r} cannot run here: {reason}")
        return entry

    def _source(self, name: str, own: bool = False) -> Source:
        def create() -> Source:
            entry = self._entry("source", name)
            record = entry.record
            source = entry.create(record.check_settings(record.settings(self.profile, self.settings.get(name))))
            assert isinstance(source, Source), f"source factory {record.factory} returned {type(source).__name__}"
            return source

        return self._once(("source", name), create, f"creating source {name!r}", own)

    def _method_settings(self, entry: Entry, source: Source) -> dict[str, Any]:
        from rdbench.spec import resolve_settings

        settings = entry.record.settings(self.profile, self.settings.get(entry.name))
        return resolve_settings(entry, settings, source)

    def _targets(self, entry: Entry, on: str, source: Source) -> list[Target]:
        texts = self.targets.get(entry.name) or self.targets.get(on)
        if not texts:
            texts = get_registry().get("source", on).record.default_targets(self.profile)
        assert texts, f"source {on!r} declares no {self.profile} targets: pass targets={{{on!r}: ['R=1']}}"
        return [Target.parse(t).resolve(source) for t in texts]

    # -- records -----------------------------------------------------------------------------

    def _record_record(self, case: Case) -> None:
        entry = self._entry(case.of, case.name, runnable=False)
        entry.record.validate()
        overrides = self.settings.get(case.name, {})
        for profile in PROFILES:
            entry.record.check_settings(entry.record.settings(profile, overrides))

    def _record_cheap_import(self, case: Case) -> None:
        entry = self._entry(case.of, case.name, runnable=False)
        plugin = entry.plugin.name
        report = self._once(("import", plugin, self.heavy), lambda: _import_alone(plugin, self.heavy), "", True)
        assert case.name in report["names"][case.of], (
            f"with only plugin {plugin!r} enabled, the registry has no {case.of} {case.name!r}: {report['problems']}"
        )
        assert not report["heavy"], (
            f"building the registry with only plugin {plugin!r} imported {', '.join(report['heavy'])}: "
            "a record module must stay cheap to import (import heavy modules in the factory's module)"
        )

    # -- sources -----------------------------------------------------------------------------

    def _source_sample_shape(self, case: Case) -> None:
        source = self._source(case.name, own=True)
        shape = source.shape
        assert isinstance(shape, tuple) and all(_whole(s) and s >= 1 for s in shape), (
            f"Source.shape must be a tuple of positive ints, got {shape!r}"
        )
        for split in SPLITS:
            for n in (1, 5):
                x = source.sample(n, self.seed, split)
                assert isinstance(x, np.ndarray), f"sample({n}, {split!r}) returned {type(x).__name__}"
                assert x.shape == (n, *shape), f"sample({n}, {split!r}) has shape {x.shape}, not {(n, *shape)}"
                assert x.dtype.kind in "biuf", f"sample({n}, {split!r}) has dtype {x.dtype}, not a real number type"
                assert np.all(np.isfinite(x)), f"sample({n}, {split!r}) holds NaN or infinite values"

    def _source_distortion(self, case: Case) -> None:
        from rdbench.distortion import Distortion

        source = self._source(case.name)
        measure = source.distortion
        assert isinstance(measure, Distortion), f"Source.distortion is a {type(measure).__name__}, not a Distortion"
        declared = self._entry("source", case.name).record.distortions
        assert not declared or measure.name in declared, (
            f"the source's measure {measure.name!r} is not the one its record declares, {declared}"
        )
        x, y = source.sample(8, self.seed, "test"), source.sample(8, self.seed, "train")
        same, apart = np.asarray(measure(x, x)), np.asarray(measure(x, y))
        assert same.shape == apart.shape == (8,), f"d(x, y) of 8 realizations has shape {apart.shape}, not (8,)"
        assert np.all(np.abs(same) <= 1e-12), f"d(x, x) must be 0, got {same}"
        assert np.all(np.isfinite(apart)) and np.all(apart >= 0), f"d(x, y) must be finite and >= 0, got {apart}"

    def _source_deterministic(self, case: Case) -> None:
        source = self._source(case.name)
        entry = self._entry("source", case.name)
        again = entry.create(
            entry.record.check_settings(entry.record.settings(self.profile, self.settings.get(case.name)))
        )
        for split in SPLITS:
            for seed in (self.seed, self.seed + 1):
                first = source.sample(16, seed, split)
                for label, other in (
                    ("again", source.sample(16, seed, split)),
                    ("by a new instance", again.sample(16, seed, split)),
                ):
                    assert first.dtype == other.dtype and np.array_equal(first, other), (
                        f"sample(16, {seed}, {split!r}) drawn {label} differs: sample must be a pure function "
                        "of (n, seed, split) (draw from Source.rng(seed, split))"
                    )

    def _source_splits_independent(self, case: Case) -> None:
        source = self._source(case.name)
        sizes = [source.split_size(s) for s in SPLITS]
        n = min([512, *(s for s in sizes if s is not None)])
        train, test = source.sample(n, self.seed, "train"), source.sample(n, self.seed, "test")
        assert not np.array_equal(train, test), f"train and test samples of seed {self.seed} are equal"
        rows = set(_rows(train))
        if source.discrete() is None and len(rows) >= 0.99 * n:  # distinct realizations: none shared
            shared = sum(r in rows for r in _rows(test)) / n
            assert shared <= 0.01, f"{shared:.0%} of {n} test realizations of seed {self.seed} are also train ones"
        a, b = (np.asarray(v, dtype=np.float64).reshape(n, -1) for v in (train, test))
        mean = (a.mean(0) + b.mean(0)) / 2
        a, b = a - mean, b - mean
        scale = math.sqrt(float(np.sum(a * a) * np.sum(b * b)))
        if scale > 0:
            r = float(np.sum(a * b)) / scale
            assert abs(r) <= 5 / math.sqrt(n), (
                f"train and test samples of one seed are correlated (r = {r:.3f}, n = {n})"
            )

    def _source_split_size(self, case: Case) -> None:
        source = self._source(case.name)
        sizes = {split: source.split_size(split) for split in SPLITS}
        for split, size in sizes.items():
            assert size is None or (_whole(size) and size >= 1), (
                f"split_size({split!r}) must be None or a positive int, got {size!r}"
            )
        if all(size is None for size in sizes.values()):
            pytest.skip("both splits draw without end (split_size is None)")
        values = math.prod(source.shape)
        for split, size in sizes.items():
            if size is None:
                continue
            size = int(size)
            if (size + 1) * values > _MAX_DRAW_VALUES:  # too large to draw whole: no repeats in a large draw
                n = max(2, _MAX_DRAW_VALUES // values)
                distinct = len(set(_rows(source.sample(n, self.seed, split))))
                assert distinct >= 0.99 * n, f"sample({n}, {split!r}) repeats realizations: {distinct} distinct"
                continue
            whole = [source.sample(size, seed, split) for seed in (self.seed, self.seed + 1)]
            assert all(len(w) == size for w in whole), f"sample(split_size={size}, {split!r}) has {len(whole[0])} rows"
            sets = [set(_rows(w)) for w in whole]
            assert sets[0] == sets[1], (
                f"sample(split_size={size}, {split!r}) with seeds {self.seed} and {self.seed + 1} holds different "
                "realizations: n <= split_size draws each realization of the split at most once"
            )
            beyond = source.sample(size + 1, self.seed, split)
            assert len(beyond) == size + 1 and set(_rows(beyond)) == sets[0], (
                f"sample(split_size + 1 = {size + 1}, {split!r}) holds realizations that sample(split_size) does "
                f"not (the split has {size})"
            )

    def _source_exact_rd(self, case: Case) -> None:
        source = self._source(case.name)
        if not source.has_exact_rd:
            pytest.skip("no exact R(D) declared")
        d_max = source.d_max
        if d_max is None:
            pytest.skip("an exact R(D) without D_max: no grid to check it on")
        d_max = float(d_max)
        assert math.isfinite(d_max) and d_max > 0, f"D_max must be finite and > 0, got {d_max!r}"
        grid = np.unique(np.concatenate([np.geomspace(1e-4, 1.0, 49), np.linspace(0.02, 1.0, 50)])) * d_max
        known = [(float(d), r) for d in grid if (r := source.rate_distortion(float(d))) is not None]
        assert len(known) >= 3, "rate_distortion returned None almost everywhere on (0, D_max]"
        d, r = (np.array(v, dtype=np.float64) for v in zip(*known))
        assert np.all(np.isfinite(r)) and np.all(r >= -1e-12), f"R(D) must be finite and >= 0; got {r.min()!r}"
        rises = np.flatnonzero(np.diff(r) > 1e-9)
        assert not rises.size, f"R(D) increases from D = {d[rises[0]]:.6g} to {d[rises[0] + 1]:.6g}"
        slopes = np.diff(r) / np.diff(d)
        tol = 1e-7 * np.maximum(1.0, np.maximum(np.abs(slopes[:-1]), np.abs(slopes[1:])))
        bends = np.flatnonzero(np.diff(slopes) < -tol)
        assert not bends.size, f"R(D) is not convex around D = {d[bends[0] + 1]:.6g}"
        at_max = source.rate_distortion(d_max)
        assert at_max is not None and abs(at_max) <= 1e-9, f"R(D_max = {d_max:.6g}) must be 0, got {at_max!r}"
        beyond = source.rate_distortion(1.5 * d_max)
        assert beyond is None or abs(beyond) <= 1e-9, f"R(1.5 D_max) must be 0, got {beyond!r}"
        at_zero = source.distortion_at_rate(0.0)
        assert at_zero is not None and math.isclose(at_zero, d_max, rel_tol=1e-9), (
            f"distortion_at_rate(0) must be D_max = {d_max!r}, got {at_zero!r}"
        )
        for di, ri in zip(d[r > 1e-6][::7], r[r > 1e-6][::7]):
            back = source.distortion_at_rate(float(ri))
            assert back is not None, f"distortion_at_rate({ri!r}) is None, but R({di!r}) = {ri!r}"
            again = source.rate_distortion(back)
            assert again is not None and abs(again - ri) <= 1e-8 * max(1.0, ri), (
                f"distortion_at_rate({ri!r}) = {back!r}, where R is {again!r}: it does not invert rate_distortion"
            )

    def _source_targets(self, case: Case) -> None:
        source = self._source(case.name)
        record = self._entry("source", case.name).record
        texts = sorted({t for profile in PROFILES for t in record.default_targets(profile)})
        if not texts:
            pytest.skip("the record declares no targets")
        for text in texts:
            target = Target.parse(text).resolve(source)
            d = target.distortion
            if d is None:
                continue  # a slope
            assert math.isfinite(d) and d > 0, f"target {text} resolves to distortion {d!r}"
            assert source.d_max is None or d <= float(source.d_max) * (1 + 1e-9), (
                f"target {text} resolves to distortion {d!r}, above D_max = {source.d_max!r}"
            )

    def _source_features(self, case: Case) -> None:
        source = self._source(case.name)
        features = self._entry("source", case.name).record.features
        if "gaussian" not in features:
            pytest.skip(f"no feature with a check declared ({', '.join(features) or 'none'})")
        assert isinstance(source, GaussianLaw), "a source declaring 'gaussian' must provide variances and rotation"
        variances, rotation = np.asarray(source.variances, float), np.asarray(source.rotation, float)
        m = variances.size
        assert source.shape == (m,), f"shape {source.shape} does not match {m} variances"
        assert np.all(np.isfinite(variances)) and np.all(variances > 0), "variances must be finite and > 0"
        assert rotation.shape == (m, m) and np.allclose(rotation.T @ rotation, np.eye(m), atol=1e-9), (
            "rotation must be an orthogonal (m, m) matrix"
        )
        assert source.distortion.name == "squared_error", "a 'gaussian' source's measure is squared error"
        n = 4000
        x = source.sample(n, self.seed, "train") @ rotation  # coordinates in the eigenbasis
        ratio = (x * x).mean(0) / variances
        assert np.all(np.abs(ratio - 1) <= 6 * math.sqrt(2 / n)), (
            f"samples' variances along the rotation's columns differ from variances (ratios {np.round(ratio, 3)})"
        )
        if d_max := source.d_max:
            assert math.isclose(float(d_max), float(variances.sum()), rel_tol=1e-9), "D_max must be sum(variances)"

    # -- estimators --------------------------------------------------------------------------

    def _estimate(self, case: Case, own: bool) -> tuple[Source, list[Target], list[list[RDPoint]]]:
        def compute() -> tuple[Source, list[Target], list[list[RDPoint]]]:
            source = self._source(case.on)
            entry = self._entry("estimator", case.name)
            targets = self._targets(entry, case.on, source)
            return source, targets, self._points(entry, source, targets)

        return self._once(("estimate", case.name, case.on), compute, f"estimator {case.name!r}", own)

    def _points(self, entry: Entry, source: Source, targets: list[Target]) -> list[list[RDPoint]]:
        estimator = entry.create(self._method_settings(entry, source))
        assert isinstance(estimator, Estimator), f"the factory returned a {type(estimator).__name__}"
        if entry.record.curve:
            per_target = estimator.curve(source, targets, self.seed)
        else:
            per_target = [estimator.estimate(source, target, self.seed) for target in targets]
        assert isinstance(per_target, (list, tuple)) and len(per_target) == len(targets), (
            f"expected one list of points per target ({len(targets)}), got {per_target!r}"
        )
        for target, points in zip(targets, per_target):
            assert isinstance(points, (list, tuple)) and points, f"{target}: expected a non-empty list, got {points!r}"
            for p in points:
                assert isinstance(p, RDPoint), f"{target}: expected RDPoints, got a {type(p).__name__}"
        return [list(points) for points in per_target]

    def _estimator_points(self, case: Case) -> None:
        from rdbench.store import point_record

        source, targets, per_target = self._estimate(case, own=True)
        for target, points in zip(targets, per_target):
            for p in points:
                p.validate()
                point_record(p, source, target)  # as the runner stores it

    def _estimator_bounds(self, case: Case) -> None:
        _, targets, per_target = self._estimate(case, own=False)
        for target, points in zip(targets, per_target):
            for p in points:
                assert p.bound in ("estimate", "upper", "lower"), f"{target}: an estimator's point is {p.bound!r}"
                assert math.isfinite(p.rate_bits), f"{target}: rate {p.rate_bits!r}"
                assert p.rate_bits >= 0 or p.bound == "lower", f"{target}: {p.bound} rate {p.rate_bits!r} < 0"
                lo, hi = p.rate_lower_bits, p.rate_upper_bits
                assert lo is None or hi is None or lo <= hi, (
                    f"{target}: rate_lower_bits {lo!r} > rate_upper_bits {hi!r}"
                )

    def _estimator_ceiling(self, case: Case) -> None:
        _, targets, per_target = self._estimate(case, own=False)
        capped = [(t, p) for t, points in zip(targets, per_target) for p in points if p.rate_ceiling_bits is not None]
        if not capped:
            pytest.skip("no point declares rate_ceiling_bits")
        for target, p in capped:
            assert p.rate_bits <= p.rate_ceiling_bits + CEILING_SLACK_BITS, (
                f"{target}: rate {p.rate_bits!r} bits above the declared ceiling {p.rate_ceiling_bits!r}"
            )

    def _estimator_deterministic(self, case: Case) -> None:
        source, targets, first = self._estimate(case, own=False)
        again = self._points(self._entry("estimator", case.name), source, targets)
        for target, a, b in zip(targets, first, again):
            numbers = [
                [(p.bound, p.rate_bits, p.distortion, p.rate_lower_bits, p.rate_upper_bits) for p in x] for x in (a, b)
            ]
            assert numbers[0] == numbers[1], f"{target}: same seed, other numbers: {numbers[0]} then {numbers[1]}"

    # -- codecs ------------------------------------------------------------------------------

    def _fit(self, entry: Entry, settings: dict[str, Any], source: Source, target: Target) -> Codec:
        codec = entry.create(settings)
        assert isinstance(codec, Codec), f"the factory returned a {type(codec).__name__}"
        assert codec.coding in ("one-shot", "stream"), f"coding must be 'one-shot' or 'stream', got {codec.coding!r}"
        if entry.record.curve:
            fitted = next(iter(codec.fit_curve(source, [target], self.seed)), None)
            assert fitted == target, f"fit_curve yielded {fitted!r}, not the target {target}"
        else:
            codec.fit(source, target, self.seed)
        return codec

    def _fitted(self, case: Case, own: bool = False) -> _Fitted:
        def compute() -> _Fitted:
            source = self._source(case.on)
            entry = self._entry("codec", case.name)
            target = self._targets(entry, case.on, source)[0]
            settings = self._method_settings(entry, source)
            codec = self._fit(entry, settings, source, target)
            try:
                pristine = copy.deepcopy(codec)
            except Exception as exc:
                raise AssertionError(
                    f"the fitted codec cannot be deep-copied ({_describe(exc)}): a decoder must be able to "
                    "run apart from the encoder"
                ) from exc
            sizes = (self.n_test, source.split_size("test"), codec.max_test)
            x = source.sample(min(n for n in sizes if n is not None), self.seed, "test")
            return _Fitted(entry, settings, source, target, pristine, x)

        return self._once(("fit", case.name, case.on), compute, f"fitting codec {case.name!r}", own)

    def _coded(self, case: Case, own: bool = False) -> tuple[_Fitted, list[Bits | bytes], np.ndarray]:
        """The test realizations' messages (from a copy of the fitted codec) and that copy's
        own reconstruction of them."""

        def compute() -> tuple[_Fitted, list[Bits | bytes], np.ndarray]:
            fitted = self._fitted(case)
            encoder = copy.deepcopy(fitted.codec)
            messages = _encode(encoder, fitted.x)
            return fitted, messages, _decode(encoder, messages)

        return self._once(("coded", case.name, case.on), compute, f"coding with {case.name!r}", own)

    def _codec_fit(self, case: Case) -> None:
        self._fitted(case, own=True)

    def _codec_round_trip(self, case: Case) -> None:
        from rdbench.evaluation import _measure_codec

        fitted, messages, encoders = self._coded(case, own=True)
        x = fitted.x
        decoded = _decode(copy.deepcopy(fitted.codec), messages)
        assert decoded.shape == x.shape, f"decoded shape {decoded.shape}, not {x.shape}"
        assert decoded.dtype.kind in "biuf" and np.all(np.isfinite(decoded)), "the reconstruction is not finite"
        assert encoders.shape == x.shape and np.array_equal(decoded, encoders), (
            "a copy of the codec taken right after fit decodes other reconstructions than the encoder's own"
        )
        point = _measure_codec(copy.deepcopy(fitted.codec), fitted.source, self.seed, len(x))
        d = float(np.mean(fitted.source.distortion(x, decoded)))
        assert math.isclose(d, point.distortion, rel_tol=1e-9, abs_tol=1e-12), (
            f"the protocol reports distortion {point.distortion!r}; the separate decoder's is {d!r}"
        )

    def _codec_rate(self, case: Case) -> None:
        from rdbench.evaluation import _measure_codec

        fitted, messages, _ = self._coded(case)
        n = len(fitted.x)
        count = n if fitted.codec.coding == "one-shot" else 1
        assert len(messages) == count, f"{fitted.codec.coding} coding of {n} realizations: {len(messages)} messages"
        point = _measure_codec(copy.deepcopy(fitted.codec), fitted.source, self.seed, n)
        point.validate()
        assert point.bound == "operational", f"a codec's point is {point.bound!r}"
        bits = sum(Bits.length(m) for m in messages)
        assert math.isclose(point.rate_bits, bits / n, rel_tol=1e-12), (
            f"reported rate {point.rate_bits!r} bits, but the messages hold {bits} bits for {n} realizations"
        )

    def _codec_deterministic(self, case: Case) -> None:
        fitted, messages, _ = self._coded(case)
        again = _encode(copy.deepcopy(fitted.codec), fitted.x)
        _same_messages(messages, again, "another copy of the fitted codec")
        refit = self._fit(fitted.entry, fitted.settings, fitted.source, fitted.target)
        _same_messages(messages, _encode(refit, fitted.x), f"a codec fitted again with seed {self.seed}")

    def _damaged(self, case: Case, variants: list[tuple[str, Bits | bytes]], lenient: bool = False) -> None:
        """Decode each variant by a fresh copy: ValueError (or, where lenient, a reproduction
        of the source's shape) within the time bound; fail listing the variants that did not."""
        fitted, _, _ = self._coded(case)
        shape = tuple(fitted.source.shape)
        problems = []
        for label, message in variants:
            decoder = copy.deepcopy(fitted.codec)
            outcome = _within(lambda d=decoder, m=message: d.decode(m), self.timeout)
            if outcome is _TIMEOUT:
                problems.append(f"{label}: still decoding after {self.timeout:g} s")
            elif isinstance(outcome, ValueError):
                continue
            elif isinstance(outcome, BaseException):
                problems.append(f"{label}: raised {_describe(outcome)}, not ValueError")
            else:
                y = np.asarray(outcome)
                valid = y.shape == shape and y.dtype.kind in "biuf" and bool(np.all(np.isfinite(y)))
                if not (lenient and valid):
                    problems.append(f"{label}: decoded to an array of shape {y.shape} instead of raising ValueError")
        assert not problems, "damaged messages: " + "; ".join(problems)

    def _longest(self, case: Case) -> Bits | bytes:
        _, messages, _ = self._coded(case)
        return max(messages, key=Bits.length)

    def _codec_corrupted(self, case: Case) -> None:
        message = self._longest(case)
        fitted = self._fitted(case)
        one_shot = fitted.codec.coding == "one-shot"
        bits = _bit_array(message)
        if isinstance(message, Bits):
            where = sorted({0, len(bits) // 2, len(bits) - 1}) if len(bits) else []
            variants = [(f"bit {i} of {len(bits)} flipped", _flip(message, [i])) for i in where]
        else:
            where = sorted({0, len(message) // 2, len(message) - 1}) if message else []
            variants = [
                (f"byte {i} of {len(message)} inverted", _flip(message, range(8 * i, 8 * i + 8))) for i in where
            ]
        if not variants:
            pytest.skip("the longest message is empty")
        self._damaged(case, variants, lenient=one_shot)

    def _codec_truncated(self, case: Case) -> None:
        message = self._longest(case)
        bits = _bit_array(message)
        unit = 1 if isinstance(message, Bits) else 8
        cuts = sorted({len(bits) - unit, len(bits) - 4 * unit, len(bits) // 2} - {len(bits)})
        cuts = [c for c in cuts if c >= 0]
        if not cuts:
            pytest.skip("the longest message is empty")
        self._damaged(case, [(f"{c} of {len(bits)} bits kept", _bits_message(bits[:c], message)) for c in cuts])

    def _codec_empty(self, case: Case) -> None:
        self._coded(case)
        self._damaged(case, [("b''", b""), ("Bits(b'', 0)", Bits(b"", 0))])

    def _codec_extended(self, case: Case) -> None:
        message = self._longest(case)
        bits = _bit_array(message)
        tails = [np.zeros(8, np.uint8), np.unpackbits(np.frombuffer(b"\xa5\x5a\xc3\x3c", np.uint8))]
        if isinstance(message, Bits):
            tails.insert(0, np.zeros(1, np.uint8))
        variants = [(f"{len(t)} bits appended", _bits_message(np.concatenate([bits, t]), message)) for t in tails]
        self._damaged(case, variants)


# -- helpers ---------------------------------------------------------------------------------


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _option(config: pytest.Config | None, name: str) -> Any:
    return None if config is None else config.getoption(name, None)


def _describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception (``struct.error: ...`` for a non-builtin type)."""
    kind = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__") and not kind[0].isupper():
        kind = f"{type(exc).__module__}.{kind}"
    text = str(exc).strip().splitlines()
    return f"{kind}: {text[0]}" if text else kind


def _rows(x: np.ndarray) -> list[bytes]:
    """Each realization of x (n, *shape) as bytes, to compare realizations exactly."""
    flat = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))
    return [row.tobytes() for row in flat]


def _encode(codec: Codec, x: np.ndarray) -> list[Bits | bytes]:
    """The messages of x (n, *shape): one per realization (one-shot) or one (stream)."""
    messages = [codec.encode(xi) for xi in x] if codec.coding == "one-shot" else [codec.encode(x)]
    for m in messages:
        assert isinstance(m, (bytes, Bits)), f"encode must return bytes or rdbench.Bits, got {type(m).__name__}"
    return messages


def _decode(codec: Codec, messages: Sequence[Bits | bytes]) -> np.ndarray:
    """The reconstructions of messages, in order, (n, *shape)."""
    if codec.coding == "one-shot":
        return np.stack([np.asarray(codec.decode(m)) for m in messages])
    return np.asarray(codec.decode(messages[0]))


def _same_messages(first: Sequence[Bits | bytes], second: Sequence[Bits | bytes], by: str) -> None:
    assert len(first) == len(second), f"{by} wrote {len(second)} messages, not {len(first)}"
    for i, (a, b) in enumerate(zip(first, second)):
        assert type(a) is type(b) and a == b, (
            f"{by} wrote other bytes for message {i} ({Bits.length(b)} bits, not {Bits.length(a)})"
        )


def _bit_array(message: Bits | bytes) -> np.ndarray:
    """The message's bits, MSB first, as a uint8 array of 0 and 1."""
    data = message.data if isinstance(message, Bits) else message
    return np.unpackbits(np.frombuffer(bytes(data), np.uint8))[: Bits.length(message)]


def _bits_message(bits: np.ndarray, like: Bits | bytes) -> Bits | bytes:
    """bits as a message of like's type (bytes: bits padded to whole bytes with zeros)."""
    data = np.packbits(bits.astype(np.uint8)).tobytes()
    return Bits(data, len(bits)) if isinstance(like, Bits) else data


def _flip(message: Bits | bytes, positions: Sequence[int] | range) -> Bits | bytes:
    bits = _bit_array(message).copy()
    bits[list(positions)] ^= 1
    return _bits_message(bits, message)


_TIMEOUT = object()


def _within(call: Callable[[], Any], timeout: float) -> Any:
    """call()'s value or exception, or _TIMEOUT when it has not returned after timeout seconds
    (it then runs on in a daemon thread)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["value"] = exc

    thread = threading.Thread(target=run, name="rdbench-testing-decode", daemon=True)
    thread.start()
    thread.join(timeout)
    return _TIMEOUT if thread.is_alive() else box["value"]


_IMPORT_ALONE = """
import json, sys
from rdbench.registry import KINDS, get_registry
heavy = set(json.loads(sys.argv[1]))
registry = get_registry()
names = {kind: sorted(registry.entries(kind)) for kind in KINDS}
[(e.record, e.available) for kind in KINDS for e in registry.entries(kind).values()]
problems = [f"{p.name}: {p.error}" for p in registry.problems]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
print(json.dumps({"names": names, "heavy": loaded, "problems": problems}))
"""


def _import_alone(plugin: str, heavy: Sequence[str]) -> dict[str, Any]:
    """Build the registry in a fresh interpreter with only ``plugin`` (an entry-point name)
    enabled: what it registers and which of ``heavy`` it imported."""
    others = {p.name for p in get_registry().plugins} - {plugin}
    disabled = others | {n.strip() for n in os.environ.get("RDBENCH_DISABLE_PLUGINS", "").split(",") if n.strip()}
    env = {**os.environ, "RDBENCH_DISABLE_PLUGINS": ",".join(sorted(disabled - {plugin}))}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE, json.dumps(list(heavy))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"building the registry failed:\n{done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


__all__ = ["CHECKS", "Case", "conformance"]
