"""The leaderboard: one row per R-D point, stored as Parquet.

The column names are a public contract (other people's scripts read them); see the README's
"Results schema". Rates are bits per source realization, distortions per realization.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rdbench.spec import CELL_FORMAT
from rdbench.store import CEILING_MARGIN_BITS, ResultStore, atomic_write

#: (column, arrow type, meaning) in the order they are written.
SCHEMA: list[tuple[str, pa.DataType, str]] = [
    ("source", pa.string(), "source name"),
    ("method", pa.string(), "estimator or codec name"),
    ("method_kind", pa.string(), "estimator | codec"),
    ("bound", pa.string(), "estimate | upper | lower | operational"),
    ("target", pa.string(), "the point's target (R=2, D=0.5, D/Dmax=0.3, slope=4), stored losslessly"),
    ("target_distortion", pa.float64(), "the distortion the method aimed at (null for slope targets)"),
    ("seed", pa.int64(), "the cell's seed"),
    ("distortion", pa.float64(), "distortion per realization, in the source's measure"),
    ("distortion_measure", pa.string(), "squared_error | hamming | absolute_error | ..."),
    ("rate_bits", pa.float64(), "rate, bits per source realization"),
    ("rate_lower_bits", pa.float64(), "lower end of the method's certificate or interval (bits)"),
    ("rate_upper_bits", pa.float64(), "upper end of the method's certificate or interval (bits)"),
    ("rate_true_bits", pa.float64(), "exact R at this distortion, bits per realization (null if unknown)"),
    ("rate_gap_bits", pa.float64(), "rate_bits - rate_true_bits (estimator error, codec gap)"),
    ("rate_ceiling_bits", pa.float64(), "largest rate the method can report from its samples (log2 n, log2 M)"),
    ("near_ceiling", pa.bool_(), f"rate within {CEILING_MARGIN_BITS:g} bit of rate_ceiling_bits"),
    ("converged", pa.bool_(), "the method's own convergence verdict (null if it reports none)"),
    ("d_max", pa.float64(), "the source's D_max (null if unknown)"),
    ("coding", pa.string(), "codecs: one-shot | stream"),
    (
        "status",
        pa.string(),
        "ok | off_target (distortion over 1 % from target_distortion for estimators, 3 % for codecs, "
        "beyond twice its standard error details.distortion_stderr where measured on samples; "
        "for an upper bound only above the target, for a lower bound only below it) "
        "| not_converged | error",
    ),
    ("error", pa.string(), "the error message of a failed cell, or of a failed target of a curve cell"),
    ("wall_seconds", pa.float64(), "wall time of the cell (the rows of a curve cell share it)"),
    ("cpu_seconds", pa.float64(), "CPU time of the cell's process (shared likewise)"),
    ("peak_memory_mb", pa.float64(), "peak resident memory of the process that ran the cell, MiB"),
    ("profile", pa.string(), "smoke | default | paper"),
    ("cell_id", pa.string(), "hash of the cell's resolved specification, code fingerprints and named files"),
    ("source_settings", pa.string(), "JSON"),
    ("method_settings", pa.string(), "JSON"),
    ("source_version", pa.string(), "version of the source's plugin"),
    ("method_version", pa.string(), "version of the method's plugin"),
    ("rdbench_version", pa.string(), ""),
    ("rdbench_code", pa.string(), "fingerprint of rdbench's code"),
    ("source_code", pa.string(), "fingerprint of the code of the source plugin's distribution"),
    ("method_code", pa.string(), "fingerprint of the code of the method plugin's distribution"),
    ("python_version", pa.string(), ""),
    ("numpy_version", pa.string(), ""),
    ("torch_version", pa.string(), "null when the cell did not use torch"),
    ("host", pa.string(), ""),
    ("finished_at", pa.string(), "UTC, ISO 8601"),
    ("details", pa.string(), "JSON: method-specific numbers, standard keys below"),
]
COLUMNS = [name for name, _, _ in SCHEMA]
#: A point whose distortion misses its target_distortion by more than this relative
#: tolerance is ``off_target``: estimators and bounds, which solve for the distortion, and
#: codecs, which land on it by training. A distortion measured on samples (its standard error
#: in ``details.distortion_stderr``) is off target only when it misses by more than the
#: tolerance plus :data:`TARGET_STDERRS` standard errors: a miss the test set cannot tell
#: from sampling noise is no evidence that the method aimed wrong.
TARGET_RTOL = {"estimator": 0.01, "codec": 0.03}
TARGET_STDERRS = 2.0
ARROW_SCHEMA = pa.schema([(name, dtype) for name, dtype, _ in SCHEMA])


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard rows of one stored cell (one row per point; one for a failed cell)."""
    spec, prov = result["spec"], result.get("provenance") or {}
    base = {
        "source": spec["source"],
        "method": spec["method"],
        "method_kind": spec["method_kind"],
        "target": ",".join(spec["targets"]),
        "seed": spec["seed"],
        "distortion_measure": result.get("distortion_measure"),
        "d_max": result.get("d_max"),
        "coding": result.get("coding"),
        "status": result["status"],
        "error": result.get("error"),
        "wall_seconds": result.get("wall_seconds"),
        "cpu_seconds": result.get("cpu_seconds"),
        "peak_memory_mb": result.get("peak_memory_mb"),
        "profile": spec.get("profile"),
        "cell_id": result["cell_id"],
        "source_settings": json.dumps(spec["source_settings"], sort_keys=True),
        "method_settings": json.dumps(spec["method_settings"], sort_keys=True),
        "source_version": spec["source_version"],
        "method_version": spec["method_version"],
        "rdbench_version": prov.get("rdbench_version"),
        "rdbench_code": spec["rdbench_code"],
        "source_code": spec["source_code"],
        "method_code": spec["method_code"],
        "python_version": prov.get("python_version"),
        "numpy_version": prov.get("numpy_version"),
        "torch_version": prov.get("torch_version"),
        "host": prov.get("host"),
        "finished_at": result.get("finished_at"),
    }
    if not result["points"]:
        return [base]
    # the targets of a partial curve cell that failed: one error row each
    out = [{**base, "target": t, "status": "error", "error": m} for t, m in (result.get("target_errors") or {}).items()]
    for point in result["points"]:
        row = dict(base)
        row.update({k: v for k, v in point.items() if k != "details"})
        details = point.get("details") or {}
        row["details"] = json.dumps(details, sort_keys=True)
        if row.get("rate_true_bits") is not None:
            row["rate_gap_bits"] = row["rate_bits"] - row["rate_true_bits"]
        row["status"] = point_status(row, details.get("distortion_stderr"))
        out.append(row)
    return out


def point_status(row: dict[str, Any], distortion_stderr: float | None = None) -> str:
    """``not_converged`` when the method says so, ``off_target`` when the distortion misses
    ``target_distortion`` by more than :data:`TARGET_RTOL` plus :data:`TARGET_STDERRS` times
    ``distortion_stderr`` (its standard error, when measured on samples), else ``ok``.

    A bound misses only on the side where it says nothing about R(D) at the target: R(D) is
    non-increasing, so an upper bound on R at a smaller distortion bounds R at the target too
    (and a lower bound at a larger one); such a point is ``ok``, ranked at its own distortion.
    """
    if row.get("converged") is False:
        return "not_converged"
    aim = row.get("target_distortion")
    if aim is None:
        return "ok"
    allowed = TARGET_RTOL[row["method_kind"]] * aim + TARGET_STDERRS * (distortion_stderr or 0.0)
    miss = row["distortion"] - aim
    if row.get("bound") == "upper":
        miss = max(miss, 0.0)
    elif row.get("bound") == "lower":
        miss = min(miss, 0.0)
    return "off_target" if abs(miss) > allowed else "ok"


def build(store: ResultStore, cells: Collection[str] | None = None) -> pd.DataFrame:
    """The stored cells of the current format as one table with exactly the :data:`COLUMNS`:
    those whose id is in ``cells`` (a run's plan), or all when ``cells`` is None."""
    records = [
        row for result in current_results(store) if cells is None or result["cell_id"] in cells for row in rows(result)
    ]
    table = pa.Table.from_pylist(records, schema=ARROW_SCHEMA)
    frame = table.to_pandas()
    return frame.sort_values(
        ["source", "method_kind", "method", "target", "seed", "distortion"], kind="stable"
    ).reset_index(drop=True)


def current_results(store: ResultStore) -> list[dict[str, Any]]:
    """The stored cells written in the current :data:`~rdbench.spec.CELL_FORMAT` (older ones
    are recomputed by a run, never mixed in)."""
    return [r for r in store.results() if r.get("cell_format") == CELL_FORMAT]


def write(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as Parquet, atomically (:func:`rdbench.store.atomic_write`)."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame[COLUMNS], schema=ARROW_SCHEMA, preserve_index=False), sink)
    return atomic_write(Path(path), sink.getvalue().to_pybytes())


def read(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / "leaderboard.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no leaderboard at {path}; run `rdbench run --out {path.parent}` first")
    return pd.read_parquet(path)
