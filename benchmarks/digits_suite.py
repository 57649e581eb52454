"""Every method on real images: the whole suite on ``digits`` (scikit-learn's 8 x 8 digits).

    python benchmarks/digits_suite.py [--profile default] [--workers 2] [--out DIR]

Runs ``rdbench run --sources digits --estimators all --codecs all`` (the same runner, cells
and leaderboard as the CLI; a finished OUT is reused), then prints from OUT/leaderboard.parquet:

* every point: method, bound kind (upper / lower / estimate / achievable), target, rate in bits
  per image, distortion (squared error summed over the 64 pixels), whether it is within 1 bit
  of the method's ceiling, the cell's wall seconds, and the error of a failed cell;
* D_max of the evaluation split;
* wall and CPU seconds per method (sums over its cells) and the whole run's wall time, the
  figure the default profile's 15-minute goal on a 2-core CPU is about.

Needs the ``sklearn`` and ``torch`` extras.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from suite_times import per_method, run_suite  # benchmarks/suite_times.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--workers", type=int, default=2, help="parallel cells (default 2)")
    parser.add_argument("--out", default=None, help="output directory (default: a fresh temporary one)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="rdbench-digits-"))
    code, wall = run_suite("digits", args.profile, args.workers, out)
    table = pd.read_parquet(out / "leaderboard.parquet")
    table["near_ceiling"] = table["near_ceiling"].fillna(False)

    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 70)
    points = table.sort_values(["method_kind", "method", "distortion"])[
        ["method", "bound", "target", "rate_bits", "distortion", "near_ceiling", "status", "wall_seconds", "error"]
    ]
    points = points.rename(columns={"rate_bits": "bits/image", "wall_seconds": "wall s"})
    print(f"\n== digits, profile {args.profile}: every point (rates in bits per image) ==")
    print(points.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep=""))
    d_max = table["d_max"].dropna()
    print(f"\nD_max (evaluation split, squared error summed over pixels): {d_max.iloc[0]:.4f}" if len(d_max) else "")

    print("\n== time per method (sums over its cells) ==")
    print(per_method(table).to_string(float_format=lambda v: f"{v:.1f}"))
    print(f"\nwhole run: {wall:.0f} s wall with {args.workers} workers ({wall / 60:.1f} min); exit code {code}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
