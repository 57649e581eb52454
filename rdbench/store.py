"""The result store: one JSON file per finished cell, written atomically.

``OUT/cells/<cell_id>.json`` appears only once complete (written to a temporary file in
the same folder, flushed to disk, then renamed), so a run killed at any moment, even with
``kill -9``, leaves only whole cells behind and loses none that finished. A cell's binary
artifacts (trained models) go to ``OUT/artifacts/<cell_id>/`` first, the same way, so a
stored cell's artifacts are always complete. What a stored cell holds: :data:`REQUIRED`, and
one :func:`point_record` per point.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rdbench.interfaces import RDPoint, Source
    from rdbench.targets import Target

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` so that ``target`` is either absent or complete, through
    a uniquely named temporary file, readable like any file the user creates (umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


class StoreWarning(UserWarning):
    """A file in ``OUT/cells/`` that is not a cell result was skipped."""


#: What every stored cell result has (the keys of ``result`` and of ``result["spec"]``).
REQUIRED = ("cell_id", "spec", "status", "points")
REQUIRED_SPEC = ("source", "method", "method_kind", "seed")

#: A point within this many bits of its ceiling is flagged ``near_ceiling``.
CEILING_MARGIN_BITS = 1.0


def point_record(point: RDPoint, source: Source, target: Target) -> dict[str, Any]:
    """A validated point as stored in a cell's ``points`` (each key a leaderboard column,
    ``details`` JSON-safe)."""
    point.validate()
    rate_true = source.rate_distortion(point.distortion) if source.has_exact_rd else None
    ceiling = point.rate_ceiling_bits
    converged = point.details.get("converged")
    return {
        "target": str(target),
        "target_distortion": target.distortion,
        "converged": None if converged is None else bool(converged),
        "bound": point.bound,
        "distortion": float(point.distortion),
        "rate_bits": float(point.rate_bits),
        "rate_lower_bits": None if point.rate_lower_bits is None else float(point.rate_lower_bits),
        "rate_upper_bits": None if point.rate_upper_bits is None else float(point.rate_upper_bits),
        "rate_ceiling_bits": None if ceiling is None else float(ceiling),
        "near_ceiling": None if ceiling is None else bool(point.rate_bits >= ceiling - CEILING_MARGIN_BITS),
        "rate_true_bits": None if rate_true is None else float(rate_true),
        "details": jsonable(point.details),
    }


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: keys as text, tuples as lists, numpy scalars as Python
    numbers, non-finite floats and any other object as text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _malformed(result: Any, cell_id: str) -> str | None:
    """Why ``result`` is not a well-formed cell result stored as ``cell_id``, or None."""
    if not isinstance(result, dict):
        return f"not a cell result (a JSON {type(result).__name__})"
    missing = [k for k in REQUIRED if k not in result]
    spec = result.get("spec")
    if not missing and isinstance(spec, dict):
        missing = [f"spec.{k}" for k in REQUIRED_SPEC if k not in spec]
    if missing:
        return f"not a cell result (no {', '.join(missing)})"
    if not isinstance(spec, dict) or not isinstance(result["status"], str) or not isinstance(result["points"], list):
        return "not a cell result (spec must be an object, status a string, points a list)"
    if result["cell_id"] != cell_id:
        return f"holds cell {result['cell_id']!r}, not {cell_id!r} (a copied or renamed cell file)"
    return None


class ResultStore:
    """The cells of one output folder.

    A file in ``cells/`` that cannot be read or is not a well-formed cell result stored
    under its own id is skipped, never fatal: it is listed in :attr:`problems` as
    (path, reason) and warned about (:class:`StoreWarning`) once per file.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)
        self.cells_dir = self.root / "cells"
        self.artifacts_dir = self.root / "artifacts"
        self.problems: list[tuple[Path, str]] = []

    def path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def write(self, result: dict[str, Any]) -> Path:
        """Atomically write one cell's artifacts, then its result (without the blobs)."""
        result = dict(result)
        artifacts: dict[str, bytes] = result.pop("artifacts", None) or {}
        for name, blob in artifacts.items():
            atomic_write(self.artifact_path(result["cell_id"], name), blob)
        text = json.dumps(result, indent=1, sort_keys=True).encode()
        return atomic_write(self.path(result["cell_id"]), text)

    def artifact_path(self, cell_id: str, name: str) -> Path:
        """Where artifact ``name`` (``<point index>-<file name>``) of a cell is stored."""
        return self.artifacts_dir / cell_id / name

    def read(self, cell_id: str) -> dict[str, Any] | None:
        """The stored result of a cell, or None when absent or not a well-formed result."""
        path = self.path(cell_id)
        try:
            result = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
            self._skip(path, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        reason = _malformed(result, cell_id)
        if reason is not None:
            self._skip(path, reason)
            return None
        return result

    def _skip(self, path: Path, reason: str) -> None:
        if all(path != seen for seen, _ in self.problems):
            self.problems.append((path, reason))
            warnings.warn(f"skipped {path}: {reason}", StoreWarning, stacklevel=3)

    def is_done(self, cell_id: str) -> bool:
        """True when the cell finished successfully (failed cells are retried)."""
        result = self.read(cell_id)
        return result is not None and result["status"] == "ok"

    def results(self) -> Iterator[dict[str, Any]]:
        """Every well-formed stored cell result, in file-name order."""
        if not self.cells_dir.is_dir():
            return
        for path in sorted(self.cells_dir.glob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            result = self.read(path.stem)
            if result is not None:
                yield result
