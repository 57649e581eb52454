"""Plugin discovery: entry points in the ``rdbench`` group, loaded through pluggy.

Every plugin, built-in or third-party, is found the same way. A plugin that fails to
import, raises (or calls ``sys.exit``) in its code, returns a malformed record or reuses a
name that another plugin already registered is reported (its distribution and what went
wrong) and skipped, so the rest keeps working; in strict mode the first such problem is
raised instead. The built-in plugins (distribution ``rdbench``) load first, so their names
cannot be taken by another plugin.

Environment variables:
    RDBENCH_STRICT_PLUGINS=1            like ``--strict-plugins``: plugin problems are errors
    RDBENCH_DISABLE_PLUGINS=a,b         skip the plugins (entry-point names) a and b
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rdbench import hookspecs
from rdbench.records import RECORD_TYPES, PluginRecord, SourceRecord

GROUP = "rdbench"
#: The distribution of the built-in plugins.
BUILTIN = "rdbench"
HOOKS: dict[str, str] = {
    "source": "rdbench_sources",
    "estimator": "rdbench_estimators",
    "codec": "rdbench_codecs",
}
KINDS: tuple[str, ...] = tuple(HOOKS)
Status = Literal["active", "unavailable", "error", "disabled"]


class PluginError(RuntimeError):
    """A plugin problem in strict mode, or a name that no active plugin provides."""


def strict_from_env() -> bool:
    return os.environ.get("RDBENCH_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get("RDBENCH_DISABLE_PLUGINS", "").split(",") if n.strip()}


@dataclass
class PluginInfo:
    """One plugin (entry point) as ``rdbench plugins`` shows it."""

    name: str
    distribution: str
    version: str
    module: str
    status: Status = "active"
    error: str | None = None
    contributes: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "contributes": self.contributes,
        }


@dataclass(frozen=True)
class Entry:
    """A registered source, estimator or codec."""

    kind: str
    record: PluginRecord
    plugin: PluginInfo
    missing: tuple[str, ...] = ()  # requirements of its extras that are not installed

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.version or self.plugin.version

    @property
    def available(self) -> bool:
        return not self.missing

    def install_hint(self) -> str:
        extras = ",".join(self.record.extras)
        return f"pip install '{self.plugin.distribution}[{extras}]'"

    def unavailable_reason(self) -> str | None:
        """Why this cannot run here, or None: missing requirements of its extras, or a
        data file of its record's dataset that is missing or fails verification."""
        if self.missing:
            return f"needs {', '.join(self.missing)}; install it with {self.install_hint()}"
        if not isinstance(self.record, SourceRecord) or self.record.data is None:
            return None
        return self.record.data.problem()

    def create(self, settings: Mapping[str, Any]) -> Any:
        """Import the factory and build the object with ``settings`` as keyword arguments."""
        if self.missing:
            raise PluginError(f"{self.kind} {self.name!r} {self.unavailable_reason()}")
        return self.record.load()(**self.record.check_settings(settings))


def _missing_requirements(dist: md.Distribution | None, extras: Iterable[str]) -> tuple[str, ...]:
    """Requirements of ``extras`` of ``dist`` that are not installed (or wrong version)."""
    if dist is None:
        return ()
    own = canonicalize_name(dist.metadata["Name"])
    missing: list[str] = []
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is None or not req.marker.evaluate({"extra": extra}):
                continue
            if canonicalize_name(req.name) == own:  # rdbench[all] -> rdbench[torch, ...]
                pending.extend(req.extras)
                continue
            try:
                installed = md.version(req.name)
            except md.PackageNotFoundError:
                missing.append(str(req.name))
                continue
            if req.specifier and not req.specifier.contains(installed, prereleases=True):
                missing.append(f"{req.name}{req.specifier} (found {installed})")
    return tuple(missing)


class Registry:
    """All plugins and what they contribute."""

    def __init__(self, *, strict: bool | None = None, disabled: Iterable[str] | None = None) -> None:
        self.strict = strict_from_env() if strict is None else strict
        self.disabled = disabled_from_env() if disabled is None else set(disabled)
        self.plugins: list[PluginInfo] = []
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)

    @classmethod
    def discover(cls, **kwargs: Any) -> Registry:
        """A registry loaded from every installed ``rdbench`` entry point: the built-in
        plugins first, then the others, each in name order."""
        registry = cls(**kwargs)
        seen: set[tuple[str, str]] = set()
        eps = sorted(md.entry_points(group=GROUP), key=lambda ep: (not _is_builtin(ep), ep.name, ep.value))
        for ep in eps:
            dist = getattr(ep, "dist", None)
            key = (ep.name, ep.value)
            if key in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(key)
            registry._add_entry_point(ep, dist)
        return registry

    # -- loading -------------------------------------------------------------------
    def _fail(self, info: PluginInfo, message: str) -> None:
        info.status, info.error = "error", message
        info.contributes = {k: [] for k in KINDS}
        if self.strict:
            raise PluginError(
                f"plugin {info.name!r} (distribution {info.distribution} {info.version}): {message.splitlines()[0]} "
                "[`rdbench plugins` without strict mode shows details; RDBENCH_DISABLE_PLUGINS skips a plugin]"
            )

    def _add_entry_point(self, ep: md.EntryPoint, dist: md.Distribution | None) -> None:
        info = PluginInfo(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else "?",
            version=dist.version if dist is not None else "?",
            module=ep.value,
        )
        self.plugins.append(info)
        if ep.name in self.disabled:
            info.status = "disabled"
            return
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of plugin code (even sys.exit) is reported
            self._fail(info, f"import failed: {type(exc).__name__}: {exc}\n{_short_tb()}")
            return
        self.register(module, info, dist)

    def register(self, module: ModuleType | object, info: PluginInfo, dist: md.Distribution | None = None) -> None:
        """Register a plugin object (a module with hook implementations)."""
        if info not in self.plugins:
            self.plugins.append(info)
        try:
            self._pm.register(module, name=info.name)
            self._pm.check_pending()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._pm.unregister(name=info.name) if self._pm.has_plugin(info.name) else None
            self._fail(info, f"invalid hook implementations: {exc}")
            return

        found: list[Entry] = []
        for kind, hook in HOOKS.items():
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue
                try:
                    records = impl.function()
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001
                    self._fail(info, f"hook {hook}() raised {type(exc).__name__}: {exc}\n{_short_tb()}")
                    self._pm.unregister(name=info.name)
                    return
                try:
                    found.extend(self._check_records(kind, records, info, dist))
                except ValueError as exc:
                    self._fail(info, f"hook {hook}() returned a malformed record: {exc}")
                    self._pm.unregister(name=info.name)
                    return
        for entry in found:
            self._entries[entry.kind][entry.name] = entry
            info.contributes[entry.kind].append(entry.name)
        if any(not e.available for e in found):
            info.status = "unavailable"
            info.error = "missing " + ", ".join(sorted({m for e in found for m in e.missing}))

    def _check_records(self, kind: str, records: object, info: PluginInfo, dist: md.Distribution | None) -> list[Entry]:
        if records is None:
            return []
        expected = RECORD_TYPES[kind].__name__
        if not isinstance(records, (list, tuple)):
            raise ValueError(f"expected a list of {expected}, got {type(records).__name__}")
        entries = []
        names = set()
        for record in records:
            if not isinstance(record, RECORD_TYPES[kind]):
                raise ValueError(f"expected {expected}, got {type(record).__name__}: {record!r}")
            record.validate()
            other = self._entries[kind].get(record.name)
            if other is not None or record.name in names:
                owner = other.plugin if other is not None else info
                raise ValueError(
                    f"{kind} name {record.name!r} is already registered by plugin {owner.name!r} "
                    f"(distribution {owner.distribution}); refused from plugin {info.name!r} "
                    f"(distribution {info.distribution}). Rename one of them, or disable one with "
                    "RDBENCH_DISABLE_PLUGINS"
                )
            names.add(record.name)
            entries.append(Entry(kind, record, info, _missing_requirements(dist, record.extras)))
        return entries

    # -- lookup --------------------------------------------------------------------
    def entries(self, kind: str) -> dict[str, Entry]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        return dict(sorted(self._entries[kind].items()))

    def get(self, kind: str, name: str) -> Entry:
        """The entry called ``name``, or a PluginError that says what exists."""
        items = self.entries(kind)
        if name in items:
            return items[name]
        hint = difflib.get_close_matches(name, list(items), n=3)
        broken = [p for p in self.plugins if p.status in ("error", "disabled")]
        msg = f"no {kind} named {name!r}."
        if hint:
            msg += f" Did you mean {', '.join(map(repr, hint))}?"
        msg += f" Known {kind}s: {', '.join(items) or '(none)'}. See `rdbench list {kind}s`."
        if broken:
            msg += " Skipped plugins: " + ", ".join(f"{p.name} ({p.status})" for p in broken) + "."
        raise PluginError(msg)

    def select(
        self, kind: str, spec: str | Iterable[str] | None, skipped: list[tuple[Entry, str]] | None = None
    ) -> list[Entry]:
        """Resolve ``all``, ``none``, a comma list or an iterable of names.

        ``all`` is every entry that can run here (see :meth:`Entry.unavailable_reason`);
        the others are appended to ``skipped`` with their reason. A name given explicitly
        that cannot run here is a PluginError saying why.
        """
        if spec is None:
            return []
        names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        names = [n for n in names if n]
        if names in (["none"], []):
            return []
        if names == ["all"]:
            chosen = []
            for entry in self.entries(kind).values():
                reason = entry.unavailable_reason()
                if reason is None:
                    chosen.append(entry)
                elif skipped is not None:
                    skipped.append((entry, reason))
            return chosen
        chosen = [self.get(kind, n) for n in dict.fromkeys(names)]
        for entry in chosen:
            reason = entry.unavailable_reason()
            if reason is not None:
                raise PluginError(f"{kind} {entry.name!r} is unavailable: {reason}")
        return chosen

    @property
    def problems(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "error"]


def _is_builtin(ep: md.EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and canonicalize_name(dist.metadata["Name"] or "") == BUILTIN


def _short_tb(limit: int = 3) -> str:
    return "".join(traceback.format_exc(limit=-limit).splitlines(keepends=True)[-2 * limit - 1 :]).rstrip()


_cache: dict[tuple[bool, frozenset[str]], Registry] = {}


def get_registry(*, strict: bool | None = None, refresh: bool = False) -> Registry:
    """The process-wide registry (discovered once per strictness and disabled set)."""
    strict = strict_from_env() if strict is None else strict
    key = (strict, frozenset(disabled_from_env()))
    if refresh or key not in _cache:
        _cache[key] = Registry.discover(strict=strict)
    return _cache[key]


__all__ = ["Entry", "PluginError", "PluginInfo", "Registry", "get_registry"]
