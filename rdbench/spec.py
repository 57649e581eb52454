"""What a cell is and what its identity covers.

A cell is (source, method, fully resolved settings, targets, seed). Its id hashes the
canonical :class:`CellSpec`: the settings after the profile, the user's overrides and the
record's plan-time resolution; a fingerprint of the code of rdbench and of each plugin's
distribution (a hash over its installed source files); and the content hash of every file
a setting names. If the numbers could change, the id changes; an old cell is never served
for new code. A cell that fails for a reason the runner detects raises :class:`CellError`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rdbench.interfaces import Source
    from rdbench.registry import Entry

#: Bump when the meaning of a stored cell changes (so old cells are recomputed).
CELL_FORMAT = 3


class CellError(RuntimeError):
    """A cell failed for a reason the runner detected (timeout, invalid output, crash)."""


@dataclass(frozen=True)
class CellSpec:
    """Everything that determines a cell's numbers.

    targets: one target, or every target of a curve method (``MethodRecord.curve``).
    n_test: codecs only: test realizations they are evaluated on (at most the split's size).
    rdbench_code, source_code, method_code: fingerprints of the code (:func:`code_fingerprint`).
    files: ``"source.KEY"`` / ``"method.KEY"`` -> SHA-256 of the file that setting names.
    profile: informational (the settings hold its effect).
    size: informational: elements per realization (the runner starts cells of larger
    realizations first, as they take longest).
    """

    source: str
    source_settings: dict[str, Any]
    source_version: str
    method: str
    method_kind: str  # "estimator" | "codec"
    method_settings: dict[str, Any]
    method_version: str
    targets: tuple[str, ...]
    seed: int
    n_test: int
    rdbench_code: str = ""
    source_code: str = ""
    method_code: str = ""
    files: dict[str, str] = field(default_factory=dict)
    profile: str = field(default="default", compare=False)
    size: int = field(default=0, compare=False)

    def identity(self) -> dict[str, Any]:
        spec = asdict(self)
        spec.pop("profile")
        spec.pop("size")
        spec["targets"] = list(self.targets)
        if self.method_kind != "codec":
            spec.pop("n_test")
        spec["cell_format"] = CELL_FORMAT
        return spec

    @property
    def cell_id(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def method_fields(entry: Entry, settings: Mapping[str, Any], source: Source) -> dict[str, Any]:
    """The method's part of a :class:`CellSpec`: its settings resolved for ``source``
    (:attr:`PluginRecord.resolve`), version, code fingerprint and named files."""
    resolved = resolve_settings(entry, settings, source)
    return {
        "method": entry.name,
        "method_kind": entry.kind,
        "method_settings": resolved,
        "method_version": entry.version,
        "method_code": code_fingerprint(entry.plugin.distribution, entry.plugin.module),
        "files": file_hashes(entry, resolved, "method"),
    }


def resolve_settings(entry: Entry, settings: Mapping[str, Any], source: Source) -> dict[str, Any]:
    """``settings`` with what the record resolves at plan time filled in (see
    :attr:`PluginRecord.resolve`)."""
    settings = entry.record.check_settings(settings)
    if entry.record.resolve is None:
        return settings
    module, _, attr = entry.record.resolve.partition(":")
    resolved = getattr(importlib.import_module(module), attr)(settings, source)
    if not isinstance(resolved, Mapping) or set(resolved) != set(settings):
        raise ValueError(f"{entry.name}: resolve {entry.record.resolve} must return the same setting keys")
    return entry.record.check_settings(resolved)


def file_hashes(entry: Entry, settings: Mapping[str, Any], role: str) -> dict[str, str]:
    """``{"ROLE.KEY": sha256}`` for each of the record's :attr:`~PluginRecord.file_settings`
    that names a file; raises ValueError naming a setting whose file is missing."""
    hashes = {}
    for key in entry.record.file_settings:
        value = settings.get(key)
        if value is None:
            continue
        path = Path(os.fspath(value)).expanduser()
        if not path.is_file():
            raise ValueError(f"{entry.name}.{key}={value}: no such file")
        hashes[f"{role}.{key}"] = file_digest(path)
    return hashes


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def code_fingerprint(distribution: str, module: str = "") -> str:
    """A hash over the source files of a distribution's top-level packages (computed once
    per process): any edit to its code changes it. ``module`` (an entry point's
    ``pkg.mod``) names a package to include when the distribution does not list its own."""
    digest = hashlib.sha256()
    for name in sorted(_top_level(distribution, module)):
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        roots = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
        for root in map(Path, roots):
            files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if _is_source(p, root))
            for path in files:
                digest.update(f"{name}/{path.relative_to(root.parent).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def rdbench_fingerprint() -> str:
    """The fingerprint of the framework itself (the ``rdbench`` package)."""
    return code_fingerprint("", "rdbench")


def _top_level(distribution: str, module: str) -> set[str]:
    names = {module.split(":")[0].split(".")[0]} if module else set()
    try:
        dist = md.distribution(distribution) if distribution and distribution != "?" else None
    except md.PackageNotFoundError:
        dist = None
    if dist is not None:
        listed = (dist.read_text("top_level.txt") or "").split()
        names.update(
            listed
            or {
                Path(str(f)).parts[0].removesuffix(".py")
                for f in dist.files or ()
                if str(f).endswith(".py") and not Path(str(f)).parts[0].endswith((".dist-info", ".egg-info"))
            }
        )
    return {n for n in names if n.isidentifier()}


def _is_source(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return (
        path.is_file()
        and "__pycache__" not in parts
        and not any(p.startswith(".") for p in parts)
        and (path.suffix not in (".pyc", ".pyo"))
    )
