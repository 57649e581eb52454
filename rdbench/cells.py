"""Running cells: a cell is a pure function of its :class:`~rdbench.spec.CellSpec`.

Cells run in any order, in any process, on any machine. :func:`run_cell` never raises: a
failure (an exception, or ``SystemExit`` from a plugin) is a result with
``status == "error"`` and the message.
"""

from __future__ import annotations

import contextvars
import math
import multiprocessing
import os
import platform
import resource
import socket
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import rdbench
from rdbench.interfaces import Bits, Codec, Estimator, RDPoint, Source
from rdbench.registry import get_registry
from rdbench.spec import CELL_FORMAT, CellSpec, method_fields, rdbench_fingerprint
from rdbench.store import ResultStore
from rdbench.targets import Target

#: A point within this many bits of its ceiling is flagged ``near_ceiling``.
CEILING_MARGIN_BITS = 1.0


#: The cell this process is running and its run's output folder (see :func:`estimate`).
_RUNNING: contextvars.ContextVar[tuple[CellSpec, Path | None] | None] = contextvars.ContextVar(
    "rdbench_running_cell", default=None
)


class CellError(RuntimeError):
    """A cell failed for a reason the runner detected (timeout, invalid output, crash)."""


def provenance() -> dict[str, Any]:
    """Versions and host of the process running a cell."""
    torch = sys.modules.get("torch")
    return {
        "rdbench_version": rdbench.__version__,
        "rdbench_code": rdbench_fingerprint(),
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "torch_version": None if torch is None else str(torch.__version__),  # a str subclass in torch
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def _reset_peak_memory() -> None:
    """Start this process's peak resident memory afresh (Linux), so that a worker that runs
    one cell after another reports each cell's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # elsewhere the peak is the process's so far


def _peak_memory_mb() -> float:
    """Peak resident memory since :func:`_reset_peak_memory` (Linux), else of the process, MiB."""
    try:
        with open("/proc/self/status") as handle:
            line = next(line for line in handle if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        # ru_maxrss is in kilobytes on Linux, bytes on macOS
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _point_record(point: RDPoint, source: Source, target: Target) -> dict[str, Any]:
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
        "details": _jsonable(point.details),
    }


def evaluate_codec(codec: Codec, source: Source, target: Target, seed: int, n_test: int) -> RDPoint:
    """Fit, encode the test split, decode, and measure: an operational point."""
    codec.fit(source, target, seed)
    return _measure_codec(codec, source, seed, n_test)


def evaluate_codec_curve(
    codec: Codec,
    source: Source,
    targets: Sequence[Target],
    seed: int,
    n_test: int,
    errors: dict[str, str] | None = None,
) -> list[list[RDPoint]]:
    """:func:`evaluate_codec` at each target in turn, through :meth:`Codec.fit_curve`.

    Without ``errors`` any failure raises. With it, a target whose measurement fails, or that
    fit_curve never reached (it raised or stopped first), gets no points and its message in
    ``errors`` (keyed by the target's text), and the targets measured are kept.
    """
    points: dict[Target, list[RDPoint]] = {}
    try:
        for target in codec.fit_curve(source, targets, seed):
            try:
                points[target] = [_measure_codec(codec, source, seed, n_test)]
            except Exception as exc:
                if errors is None:
                    raise
                errors[str(target)] = f"{type(exc).__name__}: {exc}"
                points[target] = []
    except Exception as exc:
        if errors is None:
            raise
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "CellError: fit_curve yielded no fit for this target"
    missing = [t for t in targets if t not in points]
    if missing and errors is None:
        raise CellError(f"fit_curve yielded no fit for {', '.join(map(str, missing))}")
    for target in missing:
        errors[str(target)] = reason  # type: ignore[index]  # errors is set here
    return [points.get(t, []) for t in targets]


def _measure_codec(codec: Codec, source: Source, seed: int, n_test: int) -> RDPoint:
    """Encode the test split with a fitted codec, decode, and measure.

    n_test realizations are coded, at most the test split's size (each once; see
    :meth:`Source.split_size`) and the codec's :attr:`Codec.max_test`. Rate is the real
    bitstream length in bits per realization; distortion is measured between the test
    realizations and the decoder's output.
    """
    n_test = min(n for n in (n_test, source.split_size("test"), codec.max_test) if n is not None)
    x = source.sample(n_test, seed, "test")
    t0 = time.perf_counter()
    if codec.coding == "one-shot":
        messages = [codec.encode(xi) for xi in x]
        t1 = time.perf_counter()
        x_hat = np.stack([np.asarray(codec.decode(m)) for m in messages])
    elif codec.coding == "stream":
        messages = [codec.encode(x)]
        t1 = time.perf_counter()
        x_hat = np.asarray(codec.decode(messages[0]))
    else:
        raise CellError(f"codec.coding must be 'one-shot' or 'stream', got {codec.coding!r}")
    t2 = time.perf_counter()
    for m in messages:
        if not isinstance(m, (bytes, Bits)):
            raise CellError(f"codec.encode must return bytes or rdbench.Bits, got {type(m).__name__}")
    if x_hat.shape != x.shape:
        raise CellError(f"decoded shape {x_hat.shape} differs from the input shape {x.shape}")
    total_bits = sum(Bits.length(m) for m in messages)
    details = {
        "coding": codec.coding,
        "n_test": n_test,
        "encode_seconds": t1 - t0,
        "decode_seconds": t2 - t1,
        **codec.details(),
    }
    return RDPoint(
        rate_bits=total_bits / n_test,
        distortion=float(np.mean(source.distortion(x, x_hat))),
        bound="operational",
        details=details,
    )


def estimate(
    name: str, settings: Mapping[str, Any], source: Source, targets: Sequence[Target], seed: int
) -> list[list[RDPoint]]:
    """The points of estimator ``name`` with ``settings`` (before plan-time resolution) on
    this cell's source at each of ``targets`` (resolved) and ``seed``, one list per target,
    for methods built on an estimator's output (NERD-RCC codes with NERD's Q*_Y).

    Inside a cell of a run whose output folder already holds that estimator's cell (the same
    source, resolved settings, targets, seed and code, finished ok), its stored points and
    artifacts are read back instead of computed again: the run's ``nerd`` cells train the
    generators its NERD-RCC cells use. Otherwise (outside a run, or before that cell is
    stored) the estimator runs here, on all targets together.
    """
    entry = get_registry().get("estimator", name)
    fields = method_fields(entry, settings, source)
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
    _reset_peak_memory()
    t0, c0 = time.perf_counter(), _cpu_seconds()
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
                per_target = evaluate_codec_curve(method, source, targets, spec.seed, spec.n_test, target_errors)
            else:
                per_target = [[evaluate_codec(method, source, targets[0], spec.seed, spec.n_test)]]
            result["coding"] = method.coding
        if target_errors and len(target_errors) == len(targets):
            raise CellError("every target failed: " + "; ".join(f"{t}: {m}" for t, m in target_errors.items()))
        pairs = [(target, p) for target, points in zip(targets, per_target) for p in points]
        for _, p in pairs:
            if not isinstance(p, RDPoint):
                raise CellError(f"{spec.method!r} returned {type(p).__name__}, not an RDPoint")
        result["points"] = [_point_record(p, source, target) for target, p in pairs]
        result["artifacts"] = {}
        for i, ((_, point), record) in enumerate(zip(pairs, result["points"])):
            for name, blob in point.artifacts.items():
                result["artifacts"][f"{i}-{name}"] = blob
                record["details"].setdefault("artifacts", []).append(f"artifacts/{spec.cell_id}/{i}-{name}")
        if target_errors:  # a curve cell whose other targets are kept; retried by the next run
            result["status"] = "partial"
            result["target_errors"] = target_errors
            result["error"] = "; ".join(f"{t}: {m}" for t, m in target_errors.items())
    except BaseException as exc:  # noqa: BLE001 - a failing plugin (even sys.exit) must not stop the run
        if isinstance(exc, KeyboardInterrupt) and multiprocessing.parent_process() is None:
            raise  # the user stopped a serial run
        result["status"] = "error"
        result["points"] = []
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc(limit=-8)
    result["wall_seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = _cpu_seconds() - c0
    result["peak_memory_mb"] = _peak_memory_mb()
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
