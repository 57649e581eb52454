"""What a plugin's hook returns: one :class:`PluginRecord` per source, estimator or codec."""

from __future__ import annotations

import importlib
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
        for key in ("distortions", "features", "requires"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(d, str) for d in value):
                raise ValueError(f"record {self.name!r}: {key} must be a tuple of strings")
        if self.data is not None:
            if not isinstance(self.data, Dataset):
                raise ValueError(f"record {self.name!r}: data must be an rdbench.data.Dataset")
            self.data.validate()
        if not isinstance(self.defaults, Mapping):
            raise ValueError(f"record {self.name!r}: defaults must be a mapping")
        for key, table in (("profiles", self.profiles), ("targets", self.targets)):
            if not isinstance(table, Mapping) or set(table) - set(PROFILES):
                raise ValueError(f"record {self.name!r}: {key} keys must be among {PROFILES}")
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

    def mismatch(self, source: PluginRecord) -> str | None:
        """Why this method cannot run on ``source``, or None.

        Their distortion measures must meet (empty on either side: any), and the source must
        declare every feature this method requires.
        """
        if self.distortions and source.distortions and not set(self.distortions) & set(source.distortions):
            return f"does not handle the distortion measure of {source.name!r} ({', '.join(source.distortions)})"
        missing = [f for f in self.requires if f not in source.features]
        if missing:
            return f"requires a source with {', '.join(missing)}, which {source.name!r} does not declare"
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
