"""A run's plan, stored as ``OUT/plan.json``: what was asked and which cells it made.

The leaderboard and the summary hold the cells of the folder's last plan (others in the
folder are listed, not mixed in), and ``rdbench report OUT --check`` plans the same request
again with the checked-out code to tell whether the stored results are still current.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import rdbench
from rdbench.spec import CellSpec, rdbench_fingerprint
from rdbench.store import atomic_write

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Request:
    """What a run asked for, with ``all`` resolved to names (so it plans the same cells
    elsewhere)."""

    sources: list[str]
    estimators: list[str]
    codecs: list[str]
    profile: str = "default"
    targets: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    settings: list[str] = field(default_factory=list)  # --set NAME.KEY=VALUE items
    device: str | None = None

    def command(self) -> str:
        """The ``rdbench run`` command line that repeats this request."""
        parts = [
            "rdbench run",
            f"--sources {','.join(self.sources)}",
            f"--estimators {','.join(self.estimators) or 'none'}",
            f"--codecs {','.join(self.codecs) or 'none'}",
            f"--profile {self.profile}",
        ]
        if self.targets:
            parts.append(f"--targets {','.join(self.targets)}")
        if self.seeds != [0]:
            parts.append(f"--seeds {','.join(map(str, self.seeds))}")
        parts += [f"--set '{s}'" for s in self.settings]
        if self.device:
            parts.append(f"--device {self.device}")
        return " ".join(parts)


def write(out: str | os.PathLike[str], request: Request, specs: Sequence[CellSpec]) -> Path:
    """Store the plan of a run in ``OUT/plan.json`` (atomically)."""
    codes = {"rdbench": rdbench_fingerprint()}
    for s in specs:
        codes[f"source {s.source}"] = s.source_code
        codes[f"{s.method_kind} {s.method}"] = s.method_code
    data = {
        "request": asdict(request),
        "cells": sorted({s.cell_id for s in specs}),
        "planned_at": datetime.now(timezone.utc).isoformat(),
        "rdbench_version": rdbench.__version__,
        "git_commit": git_commit(),
        "code": dict(sorted(codes.items())),
    }
    return atomic_write(Path(out) / PLAN_FILE, json.dumps(data, indent=1).encode())


def read(out: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The stored plan, or None when the folder has none (or an unreadable one)."""
    try:
        data = json.loads((Path(out) / PLAN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("cells"), list)
        or not isinstance(data.get("request"), dict)
    ):
        return None
    return data


def request_of(plan: dict[str, Any]) -> Request:
    return Request(**{k: v for k, v in plan["request"].items() if k in Request.__dataclass_fields__})


def git_commit() -> str | None:
    """The commit of the checkout rdbench runs from (``+dirty`` with uncommitted changes),
    or None outside a git checkout."""
    here = Path(rdbench.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None
