"""The result store: one JSON file per finished cell, written atomically.

``OUT/cells/<cell_id>.json`` appears only once complete (written to a temporary file in
the same folder, flushed to disk, then renamed), so a run killed at any moment, even with
``kill -9``, leaves only whole cells behind and loses none that finished.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ResultStore:
    """The cells of one output folder."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)
        self.cells_dir = self.root / "cells"

    def path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def write(self, result: dict[str, Any]) -> Path:
        """Atomically write one cell's result."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        target = self.path(result["cell_id"])
        fd, tmp = tempfile.mkstemp(dir=self.cells_dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(result, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

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
