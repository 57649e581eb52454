"""The result store: one JSON file per finished cell, written atomically.

``OUT/cells/<cell_id>.json`` appears only once complete (written to a temporary file in
the same folder, flushed to disk, then renamed), so a run killed at any moment, even with
``kill -9``, leaves only whole cells behind and loses none that finished. A cell's binary
artifacts (trained models) go to ``OUT/artifacts/<cell_id>/`` first, the same way, so a
stored cell's artifacts are always complete.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _atomic_write(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` so that ``target`` is either absent or complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


class ResultStore:
    """The cells of one output folder."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)
        self.cells_dir = self.root / "cells"
        self.artifacts_dir = self.root / "artifacts"

    def path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def write(self, result: dict[str, Any]) -> Path:
        """Atomically write one cell's artifacts, then its result (without the blobs)."""
        result = dict(result)
        artifacts: dict[str, bytes] = result.pop("artifacts", None) or {}
        for name, blob in artifacts.items():
            _atomic_write(self.artifact_path(result["cell_id"], name), blob)
        text = json.dumps(result, indent=1, sort_keys=True).encode()
        return _atomic_write(self.path(result["cell_id"]), text)

    def artifact_path(self, cell_id: str, name: str) -> Path:
        """Where artifact ``name`` (``<point index>-<file name>``) of a cell is stored."""
        return self.artifacts_dir / cell_id / name

    def read(self, cell_id: str) -> dict[str, Any] | None:
        path = self.path(cell_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"ignoring unreadable cell file {path}: {exc}", stacklevel=2)
            return None

    def is_done(self, cell_id: str) -> bool:
        """True when the cell finished successfully (failed cells are retried)."""
        result = self.read(cell_id)
        return result is not None and result.get("status") == "ok"

    def results(self) -> Iterator[dict[str, Any]]:
        """Every stored cell result, in file-name order."""
        if not self.cells_dir.is_dir():
            return
        for path in sorted(self.cells_dir.glob("*.json")):
            if path.name.startswith(".tmp-"):
                continue
            result = self.read(path.stem)
            if result is not None:
                yield result
