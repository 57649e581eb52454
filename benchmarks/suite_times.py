"""Where a whole run's time goes: wall and CPU seconds per method, and the run's wall time.

    python benchmarks/suite_times.py [--sources all] [--profile default] [--workers 2] [--out DIR]
    python benchmarks/suite_times.py --table DIR     # tabulate a finished run's leaderboard

Runs ``rdbench run --sources SOURCES --estimators all --codecs all`` (the README's command
with the profile and output folder made explicit; a finished OUT is reused), then prints
from OUT/leaderboard.parquet, per method: cells, points, failed cells, flagged points (not
``ok``), and the sums of wall and CPU seconds over its cells (the rows of a curve cell share
its time, counted once), with each method's share of the total; then the wall seconds of
each (source, method) with each source's total and share; then the whole run's wall time,
the figure the profiles' goals (smoke <= 2 min, default <= 15 min on a 2-core CPU) are about
(with ``--table``: the span from the first cell's start to the last one's finish).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def per_method(table: pd.DataFrame) -> pd.DataFrame:
    """Seconds per method, each cell counted once."""
    cells = table.drop_duplicates("cell_id")
    flagged = table[~table["status"].isin(["ok", "error"])].groupby("method").size()
    out = cells.groupby("method").agg(
        cells=("cell_id", "size"),
        failed=("status", lambda s: int((s == "error").sum())),
        wall_s=("wall_seconds", "sum"),
        cpu_s=("cpu_seconds", "sum"),
    )
    out.insert(1, "points", table.groupby("method").size())
    out.insert(3, "flagged", flagged.reindex(out.index).fillna(0).astype(int))
    out["share_%"] = 100 * out["wall_s"] / out["wall_s"].sum()
    return out.sort_values("wall_s", ascending=False)


def per_source(table: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds of each source's cells by method (columns), with the source's total and share."""
    cells = table.drop_duplicates("cell_id")
    out = cells.pivot_table(index="source", columns="method", values="wall_seconds", aggfunc="sum")
    out["total"] = out.sum(axis=1)
    out["share_%"] = 100 * out["total"] / out["total"].sum()
    return out.sort_values("total", ascending=False)


def run_suite(
    sources: str,
    profile: str,
    workers: int,
    out: Path,
    estimators: str = "all",
    codecs: str = "all",
    extra: Sequence[str] = (),
) -> tuple[int, float]:
    """``rdbench run --sources SOURCES --estimators E --codecs C ... EXTRA`` into ``out``: (exit code, wall s)."""
    command = [sys.executable, "-m", "rdbench", "run", "--sources", sources, "--estimators", estimators]
    command += ["--codecs", codecs, "--profile", profile, "--workers", str(workers), "--out", str(out), "--no-progress"]
    command += list(extra)
    print("$", " ".join(command[2:]))
    t0 = time.perf_counter()
    code = subprocess.run(command, check=False).returncode
    return code, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default="all")
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--workers", type=int, default=2, help="parallel cells (default 2)")
    parser.add_argument("--out", default=None, help="output directory (default: a fresh temporary one)")
    parser.add_argument("--table", default=None, help="only tabulate the leaderboard of this finished run")
    args = parser.parse_args()
    wall = code = None
    if args.table:
        out = Path(args.table)
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="rdbench-suite-"))
        code, wall = run_suite(args.sources, args.profile, args.workers, out)
    table = pd.read_parquet(out / "leaderboard.parquet")
    pd.set_option("display.width", 200)
    times = per_method(table)
    print(f"\n== time per method: {out} ==")
    print(times.to_string(float_format=lambda v: f"{v:.1f}"))
    print(
        f"\nsum over cells: {times['wall_s'].sum():.0f} s wall, {times['cpu_s'].sum():.0f} s CPU; "
        f"{table['cell_id'].nunique()} cells"
    )
    print(f"\n== wall seconds per source and method: {out} ==")
    print(per_source(table).to_string(float_format=lambda v: f"{v:.0f}", na_rep="-"))
    finished = pd.to_datetime(table["finished_at"])
    started = finished - pd.to_timedelta(table["wall_seconds"], unit="s")
    span = (finished.max() - started.min()).total_seconds()
    print(f"cells ran from the first start to the last finish in {span:.0f} s ({span / 60:.1f} min)")
    if wall is not None:
        print(f"whole run: {wall:.0f} s wall with {args.workers} workers ({wall / 60:.1f} min); exit code {code}")


if __name__ == "__main__":
    main()
