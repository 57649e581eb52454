"""The leaderboard: one row per R-D point, stored as Parquet.

The column names are a public contract (other people's scripts read them); see the README's
"Results schema". Rates are bits per source realization, distortions per realization.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rdbench.store import ResultStore

#: (column, arrow type, meaning) in the order they are written.
SCHEMA: list[tuple[str, pa.DataType, str]] = [
    ("source", pa.string(), "source name"),
    ("method", pa.string(), "estimator or codec name"),
    ("method_kind", pa.string(), "estimator | codec"),
    ("bound", pa.string(), "estimate | upper | lower | operational"),
    ("target", pa.string(), "the cell's target (R=2, D=0.5, D/Dmax=0.3, slope=4)"),
    ("seed", pa.int64(), "the cell's seed"),
    ("distortion", pa.float64(), "distortion per realization, in the source's measure"),
    ("distortion_measure", pa.string(), "squared_error | hamming | absolute_error | ..."),
    ("rate_bits", pa.float64(), "rate, bits per source realization"),
    ("rate_lower_bits", pa.float64(), "lower end of the method's certificate or interval (bits)"),
    ("rate_upper_bits", pa.float64(), "upper end of the method's certificate or interval (bits)"),
    ("rate_true_bits", pa.float64(), "exact R at this distortion, bits per realization (null if unknown)"),
    ("rate_gap_bits", pa.float64(), "rate_bits - rate_true_bits (estimator error, codec gap)"),
    ("rate_ceiling_bits", pa.float64(), "largest rate the method can report from its samples (log2 n, log2 M)"),
    ("near_ceiling", pa.bool_(), "rate within 1 bit of rate_ceiling_bits"),
    ("d_max", pa.float64(), "the source's D_max (null if unknown)"),
    ("coding", pa.string(), "codecs: one-shot | stream"),
    ("status", pa.string(), "ok | error"),
    ("error", pa.string(), "the error message of a failed cell"),
    ("wall_seconds", pa.float64(), "wall time of the cell"),
    ("cpu_seconds", pa.float64(), "CPU time of the cell's process"),
    ("peak_memory_mb", pa.float64(), "peak resident memory of the process that ran the cell, MiB"),
    ("profile", pa.string(), "smoke | default | paper"),
    ("cell_id", pa.string(), "hash of the cell's specification and versions"),
    ("source_settings", pa.string(), "JSON"),
    ("method_settings", pa.string(), "JSON"),
    ("source_version", pa.string(), "version of the source's plugin"),
    ("method_version", pa.string(), "version of the method's plugin"),
    ("rdbench_version", pa.string(), ""),
    ("python_version", pa.string(), ""),
    ("numpy_version", pa.string(), ""),
    ("torch_version", pa.string(), "null when the cell did not use torch"),
    ("host", pa.string(), ""),
    ("finished_at", pa.string(), "UTC, ISO 8601"),
    ("details", pa.string(), "JSON: method-specific numbers (slope, steps, certificate gap, ...)"),
]
COLUMNS = [name for name, _, _ in SCHEMA]
ARROW_SCHEMA = pa.schema([(name, dtype) for name, dtype, _ in SCHEMA])


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard rows of one stored cell (one row per point; one for a failed cell)."""
    spec, prov = result["spec"], result.get("provenance") or {}
    base = {
        "source": spec["source"],
        "method": spec["method"],
        "method_kind": spec["method_kind"],
        "target": spec["target"],
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
        "python_version": prov.get("python_version"),
        "numpy_version": prov.get("numpy_version"),
        "torch_version": prov.get("torch_version"),
        "host": prov.get("host"),
        "finished_at": result.get("finished_at"),
    }
    if not result["points"]:
        return [base]
    out = []
    for point in result["points"]:
        row = dict(base)
        row.update({k: v for k, v in point.items() if k != "details"})
        row["details"] = json.dumps(point.get("details") or {}, sort_keys=True)
        if row.get("rate_true_bits") is not None:
            row["rate_gap_bits"] = row["rate_bits"] - row["rate_true_bits"]
        out.append(row)
    return out


def build(store: ResultStore) -> pd.DataFrame:
    """All stored cells as one table with exactly the :data:`COLUMNS`."""
    records = [row for result in store.results() for row in rows(result)]
    table = pa.Table.from_pylist(records, schema=ARROW_SCHEMA)
    frame = table.to_pandas()
    return frame.sort_values(["source", "method_kind", "method", "target", "seed", "distortion"], kind="stable").reset_index(drop=True)


def write(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as Parquet (atomically: a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pandas(frame[COLUMNS], schema=ARROW_SCHEMA, preserve_index=False), tmp)
    tmp.replace(path)
    return path


def read(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / "leaderboard.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no leaderboard at {path}; run `rdbench run --out {path.parent}` first")
    return pd.read_parquet(path)


def rankings(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per source: estimators ranked by mean |error| against the exact R(D) where it is known
    (else by mean rate, lower being tighter for upper bounds), codecs by mean gap to R(D)."""
    out: dict[str, pd.DataFrame] = {}
    ok = frame[frame["status"] == "ok"]
    for source, group in ok.groupby("source", sort=True):
        parts = []
        for kind, sub in group.groupby("method_kind", sort=True):
            agg = sub.assign(abs_gap=sub["rate_gap_bits"].abs()).groupby("method").agg(
                points=("rate_bits", "size"),
                bound=("bound", lambda b: ",".join(sorted(set(b)))),
                mean_rate_bits=("rate_bits", "mean"),
                mean_distortion=("distortion", "mean"),
                mean_abs_error_bits=("abs_gap", "mean"),
                mean_gap_bits=("rate_gap_bits", "mean"),
                wall_seconds=("wall_seconds", "sum"),
            )
            key = "mean_abs_error_bits" if kind == "estimator" else "mean_gap_bits"
            agg = agg.sort_values([key, "mean_rate_bits"], na_position="last")
            agg.insert(0, "rank", np.arange(1, len(agg) + 1))
            agg.insert(0, "method_kind", kind)
            parts.append(agg.reset_index())
        out[str(source)] = pd.concat(parts, ignore_index=True)
    return out


def format_rankings(frame: pd.DataFrame) -> str:
    """Human-readable per-source rankings, as ``rdbench leaderboard`` prints them."""
    blocks = []
    failed = frame[frame["status"] != "ok"]
    for source, table in rankings(frame).items():
        blocks.append(f"== {source} ==\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if len(failed):
        blocks.append(
            f"{len(failed)} failed cell(s):\n"
            + failed[["source", "method", "target", "seed", "error"]].to_string(index=False, max_colwidth=100)
        )
    return "\n\n".join(blocks) if blocks else "(no results)"
