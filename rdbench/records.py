"""What a plugin's hook returns: one :class:`PluginRecord` per source, estimator or codec."""

from __future__ import annotations

import difflib
import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rdbench.data import Dataset

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PROFILES: tuple[str, ...] = ("smoke", "default", "paper")


@dataclass(frozen=True)
class PluginRecord:
    """One source, estimator or codec contributed by a plugin.

    name: unique identifier used on the command line (lowercase, digits, ``-._``).
    summary: one line for ``rdbench list``.
    factory: ``"package.module:callable"``, imported only when the thing is used, so
        listing plugins never imports heavy dependencies such as torch. Called with the
        settings as keyword arguments; returns a Source, Estimator or Codec.
    version: defaults to the version of the distribution that provides the plugin.
    extras: optional extras of that distribution this record needs (``("torch",)``);
        the record is shown as unavailable while any of their requirements is missing.
    defaults: default settings (JSON-serializable values).
    profiles: per-profile overrides of ``defaults``: ``{"smoke": {...}, "paper": {...}}``.
    targets: sources only: default targets per profile, e.g. ``{"default": ("R=1", "R=2")}``;
        a profile without an entry uses the ``default`` entry.
    distortions: distortion measures (``squared_error``, ``hamming``, ...): for a source, its
        measure; for an estimator or codec, the measures it handles. Empty means any. The
        runner pairs a source with a method only when their measures meet, so
        ``--sources all`` never plans a cell that cannot work.
    features: sources only: what the source offers beyond samples, for methods that need it
        (the built-in Gaussians declare ``gaussian``: an exact Gaussian law whose optimal
        channel is known in closed form).
    requires: estimators and codecs only: features a source must declare for this method to
        run on it (``pfr`` requires ``gaussian``); the runner pairs them like ``distortions``.
    data: sources that read files: the :class:`~rdbench.data.Dataset` they need (names,
        sizes, SHA-256, URLs). ``rdbench data`` lists and fetches it; ``--sources all``
        skips the source while a file is missing or wrong, and naming it is an error.
    curve: estimators and codecs only: the method computes a source's targets better
        together (warm starts along the curve) through ``Estimator.curve`` /
        ``Codec.fit_curve``; the runner then gives it one cell per (source, settings, seed)
        holding every target.
    file_settings: settings whose value names a file (a trained model, say): the file must
        exist at plan time, and its content hash joins the cell's identity.
    resolve: ``"module:callable"`` (cheap to import, like the record module) called at plan
        time as ``resolve(settings, source) -> settings`` to fill in settings left at None
        from the source (budgets by realization shape, caps by split size), so a stored
        cell says exactly what ran.
    reads: estimators and codecs only: the estimators whose cells of the same run this
        method reads through :func:`rdbench.cells.estimate` (NERD-RCC reads ``nerd``); the
        runner starts its cells after theirs on the same source and seed have finished.
    """

    name: str
    summary: str
    factory: str
    version: str | None = None
    extras: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    distortions: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    data: Dataset | None = None
    curve: bool = False
    file_settings: tuple[str, ...] = ()
    resolve: str | None = None
    reads: tuple[str, ...] = ()

    def validate(self) -> None:
        """Raise ValueError naming the first malformed field."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"record name {self.name!r} must match {_NAME.pattern}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError(f"record {self.name!r}: summary must be a non-empty string")
        module, sep, attr = str(self.factory).partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"record {self.name!r}: factory {self.factory!r} must be 'module:callable'")
        if not isinstance(self.extras, tuple) or not all(isinstance(e, str) for e in self.extras):
            raise ValueError(f"record {self.name!r}: extras must be a tuple of strings")
        for key in ("distortions", "features", "requires", "file_settings", "reads"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(d, str) for d in value):
                raise ValueError(f"record {self.name!r}: {key} must be a tuple of strings")
        if self.data is not None:
            if not isinstance(self.data, Dataset):
                raise ValueError(f"record {self.name!r}: data must be an rdbench.data.Dataset")
            self.data.validate()
        if not isinstance(self.curve, bool):
            raise ValueError(f"record {self.name!r}: curve must be True or False")
        if self.resolve is not None and ":" not in str(self.resolve):
            raise ValueError(f"record {self.name!r}: resolve {self.resolve!r} must be 'module:callable'")
        if not isinstance(self.defaults, Mapping):
            raise ValueError(f"record {self.name!r}: defaults must be a mapping")
        try:
            json.dumps(dict(self.defaults), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record {self.name!r}: defaults must be JSON values ({exc})") from None
        for key, table in (("profiles", self.profiles), ("targets", self.targets)):
            if not isinstance(table, Mapping) or set(table) - set(PROFILES):
                raise ValueError(f"record {self.name!r}: {key} keys must be among {PROFILES}")
        for profile, overrides in self.profiles.items():
            unknown = sorted(set(overrides) - set(self.defaults))
            if unknown:
                raise ValueError(
                    f"record {self.name!r}: profile {profile!r} sets {', '.join(unknown)}, which defaults lacks"
                )
        missing = sorted(set(self.file_settings) - set(self.defaults))
        if missing:
            raise ValueError(f"record {self.name!r}: file_settings {', '.join(missing)} are not in defaults")
        for profile, targets in self.targets.items():
            from rdbench.targets import Target

            for text in targets:
                Target.parse(text)

    def settings(self, profile: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """defaults, then the profile's overrides, then the user's overrides."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
        merged = dict(self.defaults)
        merged.update(self.profiles.get(profile, {}))
        merged.update(overrides or {})
        return merged

    def check_overrides(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """``overrides`` checked against :attr:`defaults`, whole floats made integers where the
        default is one (``1e4`` from JSON). Raises ValueError naming the first key that is not
        a setting of this record or whose value's type does not match the default's (a
        default of None takes any value; a whole number stands for a float)."""
        checked = dict(overrides)
        for key, value in overrides.items():
            if key not in self.defaults:
                hint = difflib.get_close_matches(key, list(self.defaults), n=1)
                known = (
                    f"did you mean {hint[0]!r}?"
                    if hint
                    else f"its settings are {', '.join(sorted(self.defaults)) or '(none)'}"
                )
                raise ValueError(f"{self.name} has no setting {key!r}; {known}")
            expected = _json_kind(self.defaults[key])
            if expected is not None and value is not None and not _fits(value, expected):
                raise ValueError(
                    f"{self.name}.{key}={json.dumps(value)}: expected {expected} (default {json.dumps(self.defaults[key])})"
                )
            if expected == "a whole number" and value is not None:
                checked[key] = int(value)
        return checked

    def mismatch(self, source: PluginRecord) -> str | None:
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

    def default_targets(self, profile: str) -> tuple[str, ...]:
        return tuple(self.targets.get(profile, self.targets.get("default", ())))

    def load(self) -> Callable[..., Any]:
        """Import and return the factory."""
        module, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


def _json_kind(value: Any) -> str | None:
    """The kind of a default value: what an override must be (None: anything)."""
    if value is None:
        return None
    for kind, types in (
        ("true or false", bool),
        ("a whole number", int),
        ("a number", float),
        ("a string", str),
        ("a list", (list, tuple)),
        ("a JSON object", Mapping),
    ):
        if isinstance(value, types):
            return kind
    return None


def _fits(value: Any, kind: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "a whole number":
        return number and float(value).is_integer()
    if kind == "a number":
        return number
    return {
        "true or false": isinstance(value, bool),
        "a string": isinstance(value, str),
        "a list": isinstance(value, (list, tuple)),
        "a JSON object": isinstance(value, Mapping),
    }[kind]
