"""What a plugin's hooks return: a :class:`SourceRecord`, :class:`EstimatorRecord` or
:class:`CodecRecord` per source, estimator or codec (one type per hook, so a field that does
not apply to a kind is an error where the record is written)."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from rdbench.data import Dataset
from rdbench.settings import Check, validate

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PROFILES: tuple[str, ...] = ("smoke", "default", "paper")


@dataclass(frozen=True)
class PluginRecord:
    """What every record holds (use :class:`SourceRecord`, :class:`EstimatorRecord` or
    :class:`CodecRecord`).

    name: unique identifier used on the command line (lowercase, digits, ``-._``).
    summary: one line for ``rdbench list``.
    factory: ``"package.module:callable"``, imported only when the thing is used, so
        listing plugins never imports heavy dependencies such as torch. Called with the
        settings as keyword arguments; returns a Source, Estimator or Codec.
    version: defaults to the version of the distribution that provides the plugin.
    extras: optional extras of that distribution this record needs (``("torch",)``);
        the record is shown as unavailable while any of their requirements is missing.
    defaults: default settings (JSON values); an override must have its default's type.
    checks: what values a setting accepts beyond its type (:mod:`rdbench.settings`:
        ``whole(minimum=1)``, ``number(above=0)``, ``choice("a", "b")``), validated at plan time.
    profiles: per-profile overrides of ``defaults``: ``{"smoke": {...}, "paper": {...}}``.
    distortions: distortion measures (``squared_error``, ``hamming``, ...): for a source, its
        measure; for an estimator or codec, the measures it handles. Empty means any. The
        runner pairs a source with a method only when their measures meet, so
        ``--sources all`` never plans a cell that cannot work.
    file_settings: settings whose value names a file (a trained model, say): the file must
        exist at plan time, and its content hash joins the cell's identity.
    resolve: ``"module:callable"`` (cheap to import, like the record module) called at plan
        time as ``resolve(settings, source) -> settings`` to fill in settings left at None
        from the source (budgets by realization shape, caps by split size), so a stored
        cell says exactly what ran.
    """

    #: ``source``, ``estimator`` or ``codec``: the hook that returns this record type.
    kind: ClassVar[str] = ""

    name: str
    summary: str
    factory: str
    _: KW_ONLY
    version: str | None = None
    extras: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    checks: Mapping[str, Check] = field(default_factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    distortions: tuple[str, ...] = ()
    file_settings: tuple[str, ...] = ()
    resolve: str | None = None

    _STRING_TUPLES: ClassVar[tuple[str, ...]] = ("extras", "distortions", "file_settings")

    def validate(self) -> None:
        """Raise ValueError naming the first malformed field."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"record name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError(f"record {self.name!r}: summary must be a non-empty string")
        module, sep, attr = str(self.factory).partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"record {self.name!r}: factory {self.factory!r} must be 'module:callable'")
        for key in self._STRING_TUPLES:
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(d, str) for d in value):
                raise ValueError(f"record {self.name!r}: {key} must be a tuple of strings")
        if self.resolve is not None and ":" not in str(self.resolve):
            raise ValueError(f"record {self.name!r}: resolve {self.resolve!r} must be 'module:callable'")
        if not isinstance(self.defaults, Mapping):
            raise ValueError(f"record {self.name!r}: defaults must be a mapping")
        try:
            json.dumps(dict(self.defaults), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {self.name!r}: defaults must be JSON values ({exc})") from None
        if not isinstance(self.checks, Mapping) or not all(isinstance(c, Check) for c in self.checks.values()):
            raise ValueError(f"record {self.name!r}: checks must map settings to rdbench.settings checks")
        for key, names in (("checks", self.checks), ("file_settings", self.file_settings)):
            missing = sorted(set(names) - set(self.defaults))
            if missing:
                raise ValueError(f"record {self.name!r}: {key} names {', '.join(missing)}, which defaults lacks")
        if not isinstance(self.profiles, Mapping) or set(self.profiles) - set(PROFILES):
            raise ValueError(f"record {self.name!r}: profiles keys must be among {PROFILES}")
        for profile, overrides in self.profiles.items():
            unknown = sorted(set(overrides) - set(self.defaults))
            if unknown:
                raise ValueError(
                    f"record {self.name!r}: profile {profile!r} sets {', '.join(unknown)}, which defaults lacks"
                )
        for profile in PROFILES:
            try:
                self.check_settings(self.settings(profile))
            except ValueError as exc:
                raise ValueError(f"record {self.name!r}: the {profile} profile's settings are invalid: {exc}") from None

    def settings(self, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """defaults, then the profile's overrides, then the user's overrides."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
        merged = dict(self.defaults)
        merged.update(self.profiles.get(profile, {}))
        merged.update(overrides or {})
        return merged

    def check_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (some or all settings) validated by :func:`rdbench.settings.validate`:
        known keys, the defaults' types, the record's checks; whole floats made ints."""
        return validate(self.name, self.defaults, self.checks, values)

    def load(self) -> Callable[..., Any]:
        """Import and return the factory."""
        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass(frozen=True, kw_only=True)
class SourceRecord(PluginRecord):
    """A source. Besides :class:`PluginRecord`'s fields:

    targets: default targets per profile, e.g. ``{"default": ("R=1", "R=2")}``; a profile
        without an entry uses the ``default`` entry.
    features: what the source offers beyond samples, for methods that require it
        (``gaussian``: the source implements :class:`rdbench.interfaces.GaussianLaw`).
    data: for sources that read files, the :class:`~rdbench.data.Dataset` they need (names,
        sizes, SHA-256, URLs). ``rdbench data`` lists and fetches it; ``--sources all``
        skips the source while a file is missing or wrong, and naming it is an error.
    """

    kind: ClassVar[str] = "source"

    targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    data: Dataset | None = None

    _STRING_TUPLES: ClassVar[tuple[str, ...]] = (*PluginRecord._STRING_TUPLES, "features")

    def validate(self) -> None:
        super().validate()
        if self.data is not None:
            if not isinstance(self.data, Dataset):
                raise ValueError(f"record {self.name!r}: data must be an rdbench.data.Dataset")
            self.data.validate()
        if not isinstance(self.targets, Mapping) or set(self.targets) - set(PROFILES):
            raise ValueError(f"record {self.name!r}: targets keys must be among {PROFILES}")
        from rdbench.targets import Target

        for targets in self.targets.values():
            for text in targets:
                Target.parse(text)

    def default_targets(self, profile: str) -> tuple[str, ...]:
        return tuple(self.targets.get(profile, self.targets.get("default", ())))


@dataclass(frozen=True, kw_only=True)
class MethodRecord(PluginRecord):
    """What estimator and codec records share. Besides :class:`PluginRecord`'s fields:

    requires: features a source must declare for this method to run on it (``pfr``
        requires ``gaussian``); the runner pairs them like ``distortions``.
    curve: the method computes a source's targets better together (warm starts along the
        curve) through ``Estimator.curve`` / ``Codec.fit_curve``; the runner then gives it
        one cell per (source, settings, seed) holding every target.
    reads: the estimators whose cells of the same run this method reads through
        :func:`rdbench.cells.estimate` (NERD-RCC reads ``nerd``); the runner starts its
        cells after theirs on the same source and seed have finished.
    """

    requires: tuple[str, ...] = ()
    curve: bool = False
    reads: tuple[str, ...] = ()

    _STRING_TUPLES: ClassVar[tuple[str, ...]] = (*PluginRecord._STRING_TUPLES, "requires", "reads")

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.curve, bool):
            raise ValueError(f"record {self.name!r}: curve must be True or False")

    def mismatch(self, source: SourceRecord) -> str | None:
        """Why this method cannot run on ``source`` (a few words about the source), or None.

        Their distortion measures must meet (empty on either side: any), and the source must
        declare every feature this method requires.
        """
        if self.distortions and source.distortions and not set(self.distortions) & set(source.distortions):
            return f"{' or '.join(source.distortions)} distortion"
        missing = [f for f in self.requires if f not in source.features]
        if missing:
            return f"no {', '.join(missing)} feature"
        return None


@dataclass(frozen=True, kw_only=True)
class EstimatorRecord(MethodRecord):
    """An estimator of R(D) (see :class:`MethodRecord`)."""

    kind: ClassVar[str] = "estimator"


@dataclass(frozen=True, kw_only=True)
class CodecRecord(MethodRecord):
    """A codec (see :class:`MethodRecord`)."""

    kind: ClassVar[str] = "codec"


#: The record type each kind's hook returns.
RECORD_TYPES: dict[str, type[PluginRecord]] = {r.kind: r for r in (SourceRecord, EstimatorRecord, CodecRecord)}
