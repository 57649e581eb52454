"""Rankings: per source, like with like (placeholder: being rewritten)."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
