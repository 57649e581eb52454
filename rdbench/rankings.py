"""Per-source rankings that compare like with like.

Rates are bits per source realization, distortions per realization. Each source gets up to
four tables, never mixed: ``estimates``, ``upper bounds``, ``lower bounds`` and ``codecs``.
One row per method variant: the rows of one method with one ``method_settings`` and one
``profile``; a method seen with several is labelled ``name#1``, ``name#2``, ... in order of
first appearance. Failed cells (status ``error``) are left out of the tables and listed by
:func:`format_rankings`. Each table's notes (what is ranked how, variant differences,
violations) are in ``table.attrs["notes"]``; the codec table's reference in
``table.attrs["reference"]``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable

import bjontegaard
import numpy as np
import pandas as pd
import scipy.stats

#: Bits by which a bound may miss before it counts as violated.
VIOLATION_TOL_BITS = 1e-9
TABLES = ("estimates", "upper bounds", "lower bounds", "codecs")
#: Confidence of the intervals over seeds.
CONFIDENCE = 0.95


def tables(frame: pd.DataFrame) -> dict[str, dict[str, pd.DataFrame]]:
    """source -> {table name: table} for the non-empty tables of :data:`TABLES`; rows with
    status ``error`` are excluded."""
    return {str(source): _source_tables(rows) for source, rows in _labelled(frame).groupby("source", sort=True)}


def reference_curve(frame: pd.DataFrame) -> tuple[str, Callable[[np.ndarray], np.ndarray]] | None:
    """(name, R_ref) for the codecs of one source, R_ref mapping distortions to bits.

    The exact R(D) where the source has one (``"exact R(D)"``; R_ref interpolates the frame's
    exact (distortion, rate_true_bits) points, codec gaps use each point's own
    rate_true_bits); else the tightest upper-bound variant (lowest mean rate over the distortion
    targets they all have; one that crosses a lower bound is passed over), else the lowest
    estimate variant, as its per-target mean (distortion, rate) points interpolated linearly in
    log(distortion), NaN outside their range. None when there is neither.
    """
    rows = _labelled(frame)
    ref = _reference(rows)
    if ref is None:
        return None
    name, points = ref
    if points is None:
        points = _curve_points(rows.dropna(subset=["rate_true_bits"]), "rate_true_bits")
    return name, _interpolator(points)


def bd_rate(ref_rates, ref_dists, test_rates, test_dists) -> float | None:
    """Bjontegaard-delta rate of the test curve against the reference, in percent: the mean
    relative rate difference over their common distortion range (negative: test needs less rate).

    Rates in bits, distortions per realization (lower is better). The ``bjontegaard`` package
    takes a quality, higher being better, so distortions are passed in dB, -10 log10(D); points
    of equal distortion are averaged. None when either curve has fewer than 2 distinct points with
    rate > 0 and distortion > 0, the distortion ranges do not overlap, or the package raises or
    warns (too little overlap).
    """
    ref, test = _bd_points(ref_rates, ref_dists), _bd_points(test_rates, test_dists)
    if ref is None or test is None or max(ref[0][0], test[0][0]) >= min(ref[0][-1], test[0][-1]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            value = bjontegaard.bd_rate(ref[1], ref[0], test[1], test[0], method="pchip", require_matching_points=False)
        except (Warning, ValueError):
            return None
    return float(value) if np.isfinite(value) else None


def format_rankings(frame: pd.DataFrame) -> str:
    """The rankings as text (``rdbench leaderboard``, ``summary.md``): per source its tables and
    their notes, then the failed cells and the flagged points (off_target, not_converged)."""
    if frame.empty:
        return "(no results)"
    blocks = []
    for source, named in tables(frame).items():
        parts = [f"== {source} =="]
        for name, table in named.items():
            title = f"{name} (reference: {table.attrs['reference']})" if "reference" in table.attrs else name
            text = table.to_string(index=False, na_rep="n/a", float_format=lambda v: f"{v:.4g}")
            parts.append("\n".join([f"-- {title} --", text, *table.attrs["notes"]]))
        blocks.append("\n\n".join(parts))
    failed = frame[frame["status"] == "error"].drop_duplicates(["cell_id", "target"])
    if len(failed):
        shown = failed[["source", "method", "target", "seed"]].assign(
            error=[str(e).splitlines()[0] if isinstance(e, str) and e else "" for e in failed["error"]]
        )
        blocks.append(f"{len(failed)} failed cell(s) or target(s):\n" + shown.to_string(index=False, max_colwidth=100))
    rows = _labelled(frame)
    flagged = rows[rows["status"] != "ok"]
    counts = ", ".join(f"{status} {n}" for status, n in flagged["status"].value_counts().sort_index().items())
    text = f"{len(flagged)} flagged point(s)" + (f" ({counts}):" if len(flagged) else "")
    if len(flagged):
        shown = flagged[["source", "variant", "target", "seed", "status", "distortion", "target_distortion"]]
        text += "\n" + shown.rename(columns={"variant": "method"}).to_string(
            index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"
        )
    blocks.append(text)
    return "\n\n".join(blocks)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The non-error rows with a ``variant`` label (per source, see the module docstring)."""
    rows = frame[frame["status"] != "error"].copy()
    keys = list(zip(rows["source"], rows["method"], rows["method_settings"].fillna(""), rows["profile"].fillna("")))
    per_method: dict[tuple, list] = {}
    for key in dict.fromkeys(keys):
        per_method.setdefault(key[:2], []).append(key)
    label = {
        key: key[1] if len(group) == 1 else f"{key[1]}#{i}"
        for group in per_method.values()
        for i, key in enumerate(group, 1)
    }
    rows["variant"] = [label[k] for k in keys]
    return rows


def _source_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    exact = bool(rows["rate_true_bits"].notna().any())
    estimators = rows[rows["method_kind"] != "codec"]
    upper, lower = estimators[estimators["bound"] == "upper"], estimators[estimators["bound"] == "lower"]
    estimates, codecs = estimators[estimators["bound"] == "estimate"], rows[rows["method_kind"] == "codec"]
    out: dict[str, pd.DataFrame] = {}
    if len(estimates):
        out["estimates"] = _estimates(estimates, exact)
    if len(upper):
        out["upper bounds"] = _bounds(upper, lower, "upper", exact)
    if len(lower):
        out["lower bounds"] = _bounds(lower, upper, "lower", exact)
    if len(codecs):
        out["codecs"] = _codecs(codecs, rows)
    for table in out.values():
        table.attrs["notes"] = table.attrs.get("notes", []) + _variant_notes(rows, table["method"])
    return out


def _summary(rows: pd.DataFrame, key: str = "mean_rate_bits", **extra: tuple[str, str]) -> pd.DataFrame:
    """Per variant (in order of first appearance): points, mean rate (bits), mean distortion,
    the ``extra`` aggregates (name=(column, how)), flagged and near-ceiling counts, and wall
    seconds summed over distinct cells. When some variant has several seeds: ``seeds`` and
    ``<key>_ci95``, the half-width of the 95 % Student-t confidence interval of the mean over
    seeds of the per-seed aggregate of ``key`` (one of the columns above)."""
    specs = {"mean_rate_bits": ("rate_bits", "mean"), "mean_distortion": ("distortion", "mean"), **extra}
    g = rows.groupby("variant", sort=False)
    out = pd.DataFrame({"points": g.size()})
    for name, (column, how) in specs.items():
        out[name] = g[column].agg(how)
    out["flagged"] = g["status"].agg(lambda s: int((s != "ok").sum()))
    out["near_ceiling"] = g["near_ceiling"].agg(lambda s: int(s.eq(True).sum()))
    cells = rows.drop_duplicates(["variant", "cell_id"])
    out["wall_seconds"] = cells.groupby("variant", sort=False)["wall_seconds"].sum(min_count=1)
    column, how = specs[key]
    per_seed = rows.dropna(subset=[column]).groupby(["variant", "seed"], sort=False)[column].agg(how)
    seeds = per_seed.groupby(level="variant", sort=False).size()
    if (seeds > 1).any():
        sd = per_seed.groupby(level="variant", sort=False).std(ddof=1)
        factor = scipy.stats.t.ppf(1 - (1 - CONFIDENCE) / 2, seeds.where(seeds > 1) - 1) / np.sqrt(seeds)
        out["seeds"] = seeds.reindex(out.index).fillna(0).astype(int)
        out[f"{key}_ci95"] = (factor * sd).reindex(out.index)
    out = out.rename_axis("method").reset_index()
    out.attrs["notes"] = (
        [
            f"{key}_ci95: half-width of the {CONFIDENCE:.0%} Student-t confidence interval of the mean over "
            "seeds (per-seed values); variants whose intervals overlap share a rank"
        ]
        if (seeds > 1).any()
        else []
    )
    return out


def _ranked(table: pd.DataFrame, key: str, ascending: bool = True) -> pd.DataFrame:
    """Sorted by ``key`` with a ``rank`` column: a variant whose interval ``key +- key_ci95``
    overlaps the previous one's shares its rank; ``-`` where the key is null (sorted last)."""
    notes = table.attrs.get("notes", [])
    order = table[key] if ascending else -table[key]
    table = table.assign(_order=order).sort_values(["_order", "method"], na_position="last").drop(columns="_order")
    half = f"{key}_ci95"
    spread_of = table[half].fillna(0.0) if half in table else pd.Series(0.0, index=table.index)
    ranks: list[object] = []
    previous = None
    for position, (value, spread) in enumerate(zip(table[key], spread_of), 1):
        if pd.isna(value):
            ranks.append("-")
            continue
        tied = previous is not None and abs(value - previous[0]) <= spread + previous[1]
        ranks.append(previous[2] if tied else position)
        previous = (value, spread, ranks[-1])
    table.insert(0, "rank", ranks)
    table = table.reset_index(drop=True)
    table.attrs["notes"] = notes
    return table


def _unranked(table: pd.DataFrame, note: str) -> pd.DataFrame:
    notes = table.attrs.get("notes", [])
    table = table.sort_values("method").reset_index(drop=True)
    table.insert(0, "rank", "-")
    table.attrs["notes"] = [note, *notes]
    return table


def _estimates(rows: pd.DataFrame, exact: bool) -> pd.DataFrame:
    """Ranked by mean |rate_bits - rate_true_bits| (bits); not ranked without an exact R(D)."""
    if not exact:
        return _unranked(_summary(rows), "no exact R(D): estimates are not ranked")
    rows = rows.assign(abs_error=(rows["rate_bits"] - rows["rate_true_bits"]).abs())
    table = _summary(
        rows, "mean_abs_error_bits", mean_abs_error_bits=("abs_error", "mean"), max_abs_error_bits=("abs_error", "max")
    )
    return _ranked(table, "mean_abs_error_bits")


def _bounds(rows: pd.DataFrame, others: pd.DataFrame, bound: str, exact: bool) -> pd.DataFrame:
    """Upper or lower bounds. With an exact R(D): ranked by tightness (mean distance to R(D) on
    the bound's side, bits), a point whose certified end crosses R(D) is a violation. Without:
    ranked by mean rate over the distortion targets every variant has (ascending for upper,
    descending for lower); a violation is an upper bound below a lower bound (see _crossings)."""
    sign = 1.0 if bound == "upper" else -1.0
    end = rows["rate_upper_bits" if bound == "upper" else "rate_lower_bits"].fillna(rows["rate_bits"])
    if exact:
        truth = rows["rate_true_bits"]
        rows = rows.assign(
            end=end, slack=sign * (rows["rate_bits"] - truth), violated=sign * (end - truth) < -VIOLATION_TOL_BITS
        )
        table = _ranked(
            _summary(rows, "tightness_bits", tightness_bits=("slack", "mean"), violations=("violated", "sum")),
            "tightness_bits",
        )
        table.attrs["notes"] += [
            f"violation: {r.variant} at {r.target} seed {r.seed}: certified {bound} end "
            f"{r.end:.4g} bits, exact R(D) {r.rate_true_bits:.4g} bits"
            for r in rows[rows["violated"]].itertuples()
        ]
        return table
    crossed, notes = _crossings(rows, others, bound)
    shared = _shared_targets(rows)
    rows = rows.assign(
        shared_rate=rows["rate_bits"].where(rows["target"].isin(shared)), violated=rows.index.isin(crossed)
    )
    table = _summary(
        rows, "mean_shared_rate_bits", mean_shared_rate_bits=("shared_rate", "mean"), violations=("violated", "sum")
    )
    if not shared:
        table = _unranked(table, "no exact R(D) and no distortion target shared by all variants: not ranked")
    else:
        table = _ranked(table, "mean_shared_rate_bits", ascending=bound == "upper")
        direction = "lowest" if bound == "upper" else "highest"
        table.attrs["notes"] += [
            f"no exact R(D): ranked by mean rate ({direction} first) over the distortion "
            f"target(s) every variant has: {', '.join(shared)}"
        ]
    table.attrs["notes"] += notes
    return table


def _crossings(rows: pd.DataFrame, others: pd.DataFrame, bound: str) -> tuple[set, list[str]]:
    """The indices of ``rows`` in a certain violation, and for upper bounds one note per pair:
    an upper point whose certified top is below the certified bottom of a lower point at the
    same target with no smaller distortion (R(D) is non-increasing, so no valid pair does that)."""
    upper, lower = (rows, others) if bound == "upper" else (others, rows)
    up = upper.assign(end=upper["rate_upper_bits"].fillna(upper["rate_bits"]), row=upper.index)
    lo = lower.assign(end=lower["rate_lower_bits"].fillna(lower["rate_bits"]), row=lower.index)
    pairs = up.merge(lo, on="target", suffixes=("_u", "_l"))
    below = pairs["end_u"] < pairs["end_l"] - VIOLATION_TOL_BITS
    pairs = pairs[below & (pairs["distortion_u"] <= pairs["distortion_l"])]
    crossed = set(pairs["row_u" if bound == "upper" else "row_l"])
    notes = (
        []
        if bound == "lower"
        else [
            f"violation: upper bound {p.variant_u} (seed {p.seed_u}, {p.end_u:.4g} bits) below lower bound "
            f"{p.variant_l} (seed {p.seed_l}, {p.end_l:.4g} bits) at {p.target}"
            for p in pairs.itertuples()
        ]
    )
    return crossed, notes


def _shared_targets(rows: pd.DataFrame) -> list[str]:
    """The distortion targets (target_distortion known, not slopes) every variant has."""
    aimed = rows[rows["target_distortion"].notna()]
    sets = [set(t) for _, t in rows.groupby("variant", sort=False)["target"]]
    shared = set(aimed["target"]).intersection(*sets)
    return sorted(shared, key=lambda t: aimed.loc[aimed["target"] == t, "target_distortion"].iloc[0])


def _lowest(rows: pd.DataFrame) -> str:
    """The variant with the lowest mean rate over the shared distortion targets (all points if none)."""
    shared = _shared_targets(rows)
    pick = rows[rows["target"].isin(shared)] if shared else rows
    return str(pick.groupby("variant", sort=False)["rate_bits"].mean().idxmin())


def _reference(rows: pd.DataFrame) -> tuple[str, pd.DataFrame | None] | None:
    """(name, curve points) of the codecs' reference; the points are None for the exact R(D).
    Upper-bound variants that cross a lower bound (see :func:`_crossings`) are passed over."""
    if rows["rate_true_bits"].notna().any():
        return "exact R(D)", None
    estimators = rows[rows["method_kind"] != "codec"]
    upper, lower = estimators[estimators["bound"] == "upper"], estimators[estimators["bound"] == "lower"]
    if len(upper):
        crossed = upper.loc[sorted(_crossings(upper, lower, "upper")[0]), "variant"]
        sound = upper[~upper["variant"].isin(crossed)]
        part, what = (sound if len(sound) else upper), "upper bound"
    else:
        part, what = estimators[estimators["bound"] == "estimate"], "estimate"
    if not len(part):
        return None
    variant = _lowest(part)
    return f"{variant} ({what})", _curve_points(part[part["variant"] == variant], "rate_bits")


def _curve_points(rows: pd.DataFrame, rate: str) -> pd.DataFrame:
    """(distortion, rate) per target, means over seeds, distortion > 0, sorted by distortion."""
    points = rows.groupby("target")[["distortion", rate]].mean().rename(columns={rate: "rate"})
    return points[points["distortion"] > 0].sort_values("distortion").reset_index(drop=True)


def _interpolator(points: pd.DataFrame) -> Callable[[np.ndarray], np.ndarray]:
    """R(D) linear in log(D) through the points; NaN outside their distortion range."""
    log_d, rates = np.log(points["distortion"].to_numpy(float)), points["rate"].to_numpy(float)

    def curve(distortion: np.ndarray) -> np.ndarray:
        d = np.asarray(distortion, dtype=float)
        if not len(rates):
            return np.full_like(d, np.nan)
        return np.interp(np.log(np.where(d > 0, d, np.nan)), log_d, rates, left=np.nan, right=np.nan)

    return curve


def _codecs(rows: pd.DataFrame, source_rows: pd.DataFrame) -> pd.DataFrame:
    """Ranked by mean gap (bits) to the reference R_ref at each codec point's own distortion;
    BD-rate (percent) of the codec's points against the reference's."""
    ref = _reference(source_rows)
    if ref is None:
        ref_rate = pd.Series(np.nan, index=rows.index)
    elif ref[1] is None:
        ref_rate = rows["rate_true_bits"]
    else:
        ref_rate = pd.Series(_interpolator(ref[1])(rows["distortion"].to_numpy(float)), index=rows.index)
    rows = rows.assign(ref_rate=ref_rate, gap=rows["rate_bits"] - ref_rate)
    table = _summary(rows, "mean_gap_bits", mean_gap_bits=("gap", "mean"))
    bd = {}
    if ref is not None:
        for variant, part in rows.groupby("variant", sort=False):
            # the exact reference: the codec's own points moved onto R(D)
            anchor = part if ref[1] is None else ref[1].rename(columns={"rate": "ref_rate"})
            bd[variant] = bd_rate(anchor["ref_rate"], anchor["distortion"], part["rate_bits"], part["distortion"])
    table.insert(
        table.columns.get_loc("mean_gap_bits") + 1,
        "bd_rate_pct",
        pd.to_numeric(table["method"].map(bd), errors="coerce").astype(float),
    )
    table = table.drop(columns="near_ceiling")
    if ref is None:
        return _unranked(table, "no exact R(D) and no estimator curve: codecs are not ranked")
    table = _ranked(table, "mean_gap_bits")
    table.attrs["reference"] = ref[0]
    notes = [*table.attrs["notes"], "gap: rate_bits - R_ref at the point's own distortion"]
    if ref[1] is not None:
        span = f"{ref[1]['distortion'].min():.4g} to {ref[1]['distortion'].max():.4g}"
        notes.append(
            f"reference from this run's estimators, interpolated in log(D) over D = {span} (no "
            "extrapolation)"
            + (
                "; an upper bound, so the gap to R(D) is at least this gap"
                if ref[0].endswith("(upper bound)")
                else "; an estimate, not a bound"
            )
        )
        outside = int(rows["gap"].isna().sum())
        if outside:
            notes.append(f"{outside} codec point(s) outside the reference's distortion range have no gap")
    table.attrs["notes"] = notes
    return table


def _variant_notes(rows: pd.DataFrame, labels: pd.Series) -> list[str]:
    """For each method with several variants among ``labels``: what their settings and profiles differ in."""
    notes = []
    firsts = rows.drop_duplicates("variant").set_index("variant")
    for method, group in firsts.loc[list(labels)].groupby("method", sort=False):
        every = firsts[firsts["method"] == method]
        if len(every) < 2:
            continue
        settings = {
            v: {**json.loads(s or "{}"), "profile": p}
            for v, s, p in zip(every.index, every["method_settings"].fillna("{}"), every["profile"])
        }
        keys = sorted({k for s in settings.values() for k in s})
        differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings.values()}) > 1]
        notes.append(
            f"{method} variants differ in: "
            + "; ".join(
                f"{v}: " + ", ".join(f"{k}={json.dumps(settings[v].get(k), sort_keys=True)}" for k in differ)
                for v in group.index
            )
        )
    return notes


def _bd_points(rates, dists) -> tuple[np.ndarray, np.ndarray] | None:
    """(quality in dB ascending, mean rate per quality) of the points with rate > 0 and D > 0,
    or None when fewer than 2 distinct ones."""
    rates, dists = np.asarray(rates, dtype=float), np.asarray(dists, dtype=float)
    keep = np.isfinite(rates) & np.isfinite(dists) & (rates > 0) & (dists > 0)
    quality, inverse = np.unique(-10.0 * np.log10(dists[keep]), return_inverse=True)
    if len(quality) < 2:
        return None
    return quality, np.bincount(inverse, weights=rates[keep]) / np.bincount(inverse)
