"""Running cells: a cell is a pure function of its :class:`~rdbench.spec.CellSpec`.

Cells run in any order, in any process, on any machine. :func:`run_cell` never raises: a
failure (an exception, or ``SystemExit`` from a plugin) is a result with
``status == "error"`` and the message. Inside a cell, :func:`estimate` gives a method another
estimator's points, read back from the run's stored cell when there is one.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rdbench.evaluation import evaluate_codec, evaluate_codec_curve
from rdbench.interfaces import Codec, Estimator, RDPoint, Source
from rdbench.provenance import cpu_seconds, peak_memory_mb, provenance, reset_peak_memory
from rdbench.registry import get_registry
from rdbench.spec import CELL_FORMAT, CellError, CellSpec, method_fields
from rdbench.store import ResultStore, point_record
from rdbench.targets import Target

#: The cell this process is running and its run's output folder (see :func:`estimate`).
_RUNNING: contextvars.ContextVar[tuple[CellSpec, Path | None] | None] = contextvars.ContextVar(
    "rdbench_running_cell", default=None
)


def estimate(
    name: str,
    settings: Mapping[str, Any],
    source: Source,
    targets: Sequence[Target],
    seed: int,
    profile: str = "default",
) -> list[list[RDPoint]]:
    """The points of estimator ``name`` on this cell's source at each of ``targets``
    (resolved) and ``seed``, one list per target, for methods built on an estimator's output
    (NERD-RCC codes with NERD's Q*_Y). Its settings are its record's ``profile`` settings
    updated by ``settings`` (before plan-time resolution).

    Inside a cell of a run whose output folder already holds that estimator's cell (the same
    source, resolved settings, targets, seed and code, finished ok), its stored points and
    artifacts are read back instead of computed again: the run's ``nerd`` cells train the
    generators its NERD-RCC cells use. Otherwise (outside a run, or before that cell is
    stored) the estimator runs here, on all targets together.
    """
    entry = get_registry().get("estimator", name)
    fields = method_fields(entry, entry.record.settings(profile, settings), source)
    running = _RUNNING.get()
    if running is not None and running[1] is not None:
        cell, out = running
        if seed == cell.seed and list(targets) == [Target.parse(t).resolve(source) for t in cell.targets]:
            files = {k: v for k, v in cell.files.items() if k.startswith("source.")}
            spec = replace(cell, **{**fields, "files": {**files, **fields["files"]}})
            groups = [cell.targets] if entry.record.curve else [(t,) for t in cell.targets]
            stored = [_stored_points(ResultStore(out), replace(spec, targets=g).cell_id) for g in groups]
            if all(s is not None for s in stored):
                return [points for group in stored for points in group]
    return _estimate(entry, entry.create(fields["method_settings"]), source, targets, seed)


def _estimate(
    entry: Any, estimator: Estimator, source: Source, targets: Sequence[Target], seed: int
) -> list[list[RDPoint]]:
    """One list of points per target: one ``curve`` call for a curve method, else one
    ``estimate`` per target."""
    if entry.record.curve:
        return estimator.curve(source, list(targets), seed)
    return [estimator.estimate(source, target, seed) for target in targets]


def _stored_points(store: ResultStore, cell_id: str) -> list[list[RDPoint]] | None:
    """The points of a stored ok cell with their artifacts, one list per target, or None."""
    result = store.read(cell_id)
    if result is None or result.get("status") != "ok":
        return None
    points: dict[str, list[RDPoint]] = {t: [] for t in result["spec"]["targets"]}
    for record in result["points"]:
        details = dict(record["details"])
        names = details.pop("artifacts", [])
        artifacts = {}
        for stored_name in names:
            file = Path(stored_name).name
            try:
                artifacts[file.split("-", 1)[1]] = store.artifact_path(cell_id, file).read_bytes()
            except OSError:
                return None
        points[record["target"]].append(
            RDPoint(
                rate_bits=record["rate_bits"],
                distortion=record["distortion"],
                bound=record["bound"],
                rate_lower_bits=record["rate_lower_bits"],
                rate_upper_bits=record["rate_upper_bits"],
                rate_ceiling_bits=record["rate_ceiling_bits"],
                details={**details, "reused_cell": cell_id},
                artifacts=artifacts,
            )
        )
    return list(points.values())


def run_cell(spec: CellSpec, out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run one cell in this process; never raises. out: the run's output folder, where
    :func:`estimate` looks for cells to reuse."""
    token = _RUNNING.set((spec, None if out is None else Path(out)))
    try:
        return _run_cell(spec)
    finally:
        _RUNNING.reset(token)


def _run_cell(spec: CellSpec) -> dict[str, Any]:
    registry = get_registry()  # importing plugins is not this cell's time
    _import_factories(registry, spec)
    started = datetime.now(timezone.utc)
    reset_peak_memory()
    t0, c0 = time.perf_counter(), cpu_seconds()
    result: dict[str, Any] = {
        "cell_id": spec.cell_id,
        "cell_format": CELL_FORMAT,
        "spec": asdict(spec),
        "status": "ok",
        "error": None,
        "points": [],
        "d_max": None,
        "distortion_measure": None,
        "started_at": started.isoformat(),
    }
    target_errors: dict[str, str] = {}
    try:
        entry = registry.get(spec.method_kind, spec.method)
        source = registry.get("source", spec.source).create(spec.source_settings)
        if not isinstance(source, Source):
            raise CellError(f"source factory for {spec.source!r} returned {type(source).__name__}, not a Source")
        result["distortion_measure"] = source.distortion.name
        result["d_max"] = None if source.d_max is None else float(source.d_max)
        targets = [Target.parse(t).resolve(source) for t in spec.targets]
        method = entry.create(spec.method_settings)
        if spec.method_kind == "estimator":
            if not isinstance(method, Estimator):
                raise CellError(f"estimator factory for {spec.method!r} returned {type(method).__name__}")
            per_target = _estimate(entry, method, source, targets, spec.seed)
            if not isinstance(per_target, (list, tuple)) or len(per_target) != len(targets):
                raise CellError(f"estimator {spec.method!r} returned {per_target!r}, not one list of points per target")
            for points in per_target:
                if not isinstance(points, (list, tuple)) or not points:
                    raise CellError(f"estimator {spec.method!r} returned {points!r}, not a non-empty list of RDPoint")
        else:
            if not isinstance(method, Codec):
                raise CellError(f"codec factory for {spec.method!r} returned {type(method).__name__}")
            if entry.record.curve:
                per_target, target_errors = evaluate_codec_curve(method, source, targets, spec.seed, spec.n_test)
            else:
                per_target = [[evaluate_codec(method, source, targets[0], spec.seed, spec.n_test)]]
            result["coding"] = method.coding
        target_error = "; ".join(f"{t}: {m}" for t, m in target_errors.items())
        if target_errors and len(target_errors) == len(targets):
            raise CellError(f"every target failed: {target_error}")
        pairs = [(target, p) for target, points in zip(targets, per_target) for p in points]
        for _, p in pairs:
            if not isinstance(p, RDPoint):
                raise CellError(f"{spec.method!r} returned {type(p).__name__}, not an RDPoint")
        result["points"] = [point_record(p, source, target) for target, p in pairs]
        result["artifacts"] = {}
        for i, ((_, point), record) in enumerate(zip(pairs, result["points"])):
            for name, blob in point.artifacts.items():
                result["artifacts"][f"{i}-{name}"] = blob
                record["details"].setdefault("artifacts", []).append(f"artifacts/{spec.cell_id}/{i}-{name}")
        if target_errors:  # a curve cell whose other targets are kept; retried by the next run
            result["status"] = "partial"
            result["target_errors"] = target_errors
            result["error"] = target_error
    except BaseException as exc:  # noqa: BLE001 - a failing plugin (even sys.exit) must not stop the run
        if isinstance(exc, KeyboardInterrupt) and multiprocessing.parent_process() is None:
            raise  # the user stopped a serial run
        result["status"] = "error"
        result["points"] = []
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=-8)
    result["wall_seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = cpu_seconds() - c0
    result["peak_memory_mb"] = peak_memory_mb()
    result["finished_at"] = datetime.now(timezone.utc).isoformat()
    result["provenance"] = provenance()
    return result


def _import_factories(registry: Any, spec: CellSpec) -> None:
    """Import the source's and the method's factories; a failure is raised again, inside
    the cell's clock and error handling, when the cell creates them."""
    for kind, name in (("source", spec.source), (spec.method_kind, spec.method)):
        try:
            registry.get(kind, name).record.load()
        except BaseException:  # noqa: BLE001, S110 - reported by the cell itself
            pass


def error_result(spec: CellSpec, message: str, wall_seconds: float | None = None) -> dict[str, Any]:
    """The result recorded for a cell the runner had to give up on (timeout, crash)."""
    now = datetime.now(timezone.utc).isoformat()
    return {
        "cell_id": spec.cell_id,
        "cell_format": CELL_FORMAT,
        "spec": asdict(spec),
        "status": "error",
        "error": message,
        "points": [],
        "d_max": None,
        "distortion_measure": None,
        "started_at": None,
        "finished_at": now,
        "wall_seconds": wall_seconds,
        "cpu_seconds": None,
        "peak_memory_mb": None,
        "provenance": provenance(),
    }
