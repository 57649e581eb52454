"""Rankings: like with like, per source (hand-built leaderboard frames)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from rdbench import leaderboard
from rdbench.rankings import bd_rate, format_rankings, reference_curve, tables


def gaussian_rd(d: float) -> float:
    """Exact R(D) of a unit-variance Gaussian under squared error, bits."""
    return max(0.0, 0.5 * math.log2(1.0 / d))


def point(method: str, rate: float, distortion: float, *, target: str = "D=0.5", exact: bool = True, **columns) -> dict:
    """One leaderboard row; every column of leaderboard.COLUMNS, most None."""
    row = dict.fromkeys(leaderboard.COLUMNS)
    row.update(
        source="gauss",
        method=method,
        method_kind="estimator",
        bound="estimate",
        target=target,
        target_distortion=distortion,
        seed=0,
        distortion=distortion,
        rate_bits=rate,
        status="ok",
        wall_seconds=1.0,
        profile="default",
        method_settings="{}",
    )
    row.update(columns)
    if exact and row["status"] != "error":
        row["rate_true_bits"] = gaussian_rd(row["distortion"])
        row["rate_gap_bits"] = row["rate_bits"] - row["rate_true_bits"]
    if row["cell_id"] is None:
        row["cell_id"] = f"{row['source']}/{method}/{row['method_settings']}/{row['profile']}/{row['seed']}/{target}"
    return row


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=leaderboard.COLUMNS)


def by_method(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("method")


def test_bound_kinds_are_ranked_apart():
    rows = [
        point("est-good", 1.02, 0.25, target="R=1"),
        point("est-bad", 1.3, 0.25, target="R=1"),
        point("low", 0.2, 0.25, target="R=1", bound="lower"),
        point("up", 1.1, 0.25, target="R=1", bound="upper"),
        # a source without exact R(D): lower bounds rank by rate, highest (tightest) first
        point("low-loose", 0.1, 0.5, exact=False, source="noexact", bound="lower"),
        point("low-tight", 0.4, 0.5, exact=False, source="noexact", bound="lower"),
        point("up-a", 0.9, 0.5, exact=False, source="noexact", bound="upper"),
    ]
    result = tables(frame(*rows))
    gauss, noexact = result["gauss"], result["noexact"]
    assert set(gauss) == {"estimates", "upper bounds", "lower bounds"}
    assert list(gauss["estimates"]["method"]) == ["est-good", "est-bad"]
    assert list(gauss["estimates"]["rank"]) == [1, 2]
    assert list(gauss["lower bounds"]["method"]) == ["low"]
    assert list(gauss["upper bounds"]["method"]) == ["up"]
    assert by_method(gauss["lower bounds"]).loc["low", "tightness_bits"] == pytest.approx(0.8)
    assert list(noexact["lower bounds"]["method"]) == ["low-tight", "low-loose"]
    assert list(noexact["upper bounds"]["method"]) == ["up-a"]
    assert "estimates" not in noexact


def test_upper_bound_below_exact_rd_is_a_violation():
    true = gaussian_rd(0.25)
    rows = [
        point("below", true - 0.1, 0.25),
        point("below", true - 0.05, 0.5**3, target="D=0.125"),
        point("certified", true - 0.05, 0.25, rate_upper_bits=true + 0.01),
        point("above", true + 0.1, 0.25),
    ]
    rows = [dict(r, bound="upper") for r in rows]
    table = by_method(tables(frame(*rows))["gauss"]["upper bounds"])
    assert table.loc["below", "violations"] == 2
    assert table.loc["certified", "violations"] == 0
    assert table.loc["above", "violations"] == 0
    assert "violation: below at D=0.5" in format_rankings(frame(*rows))


def test_upper_bound_below_lower_bound_without_exact_rd_is_a_violation():
    rows = [
        point("up", 0.5, 0.5, exact=False, bound="upper"),
        point("low", 0.7, 0.5, exact=False, bound="lower"),
        point("low", 0.2, 0.25, exact=False, bound="lower", target="D=0.25"),
        point("up2", 0.9, 0.5, exact=False, bound="upper"),
    ]
    result = tables(frame(*rows))["gauss"]
    upper, lower = by_method(result["upper bounds"]), by_method(result["lower bounds"])
    assert upper.loc["up", "violations"] == 1 and upper.loc["up2", "violations"] == 0
    assert lower.loc["low", "violations"] == 1
    assert "upper bound up (seed 0, 0.5 bits) below lower bound low" in format_rankings(frame(*rows))
    # only the target both upper bounds have is compared
    assert "D=0.5" in " ".join(result["upper bounds"].attrs["notes"])


def test_codec_ranks_by_gap_at_its_own_distortion():
    # Both aim at D=0.5 (R = 0.5 bit). "far" has the lower rate but lands at D=0.9, where
    # R(D) = 0.076: its gap 0.324 bits is larger than "close"'s 0.1 bit.
    rows = [
        point("close", 0.6, 0.5, method_kind="codec", bound="operational"),
        point("far", 0.4, 0.9, method_kind="codec", bound="operational", target_distortion=0.5, status="off_target"),
    ]
    table = tables(frame(*rows))["gauss"]["codecs"]
    assert list(table["method"]) == ["close", "far"]
    assert list(table["mean_gap_bits"]) == pytest.approx([0.1, 0.4 - gaussian_rd(0.9)])
    assert table.attrs["reference"] == "exact R(D)"
    assert "codecs (reference: exact R(D))" in format_rankings(frame(*rows))


def test_two_settings_of_one_method_are_two_variants():
    rows = [
        point("nerd", 1.5, 0.25, target="R=1", method_settings=json.dumps({"steps": 100, "lr": 0.001})),
        point("nerd", 1.1, 0.25, target="R=1", method_settings=json.dumps({"steps": 1000, "lr": 0.001})),
        point("nerd", 1.6, 0.125, target="D=0.125", method_settings=json.dumps({"steps": 1000, "lr": 0.001})),
    ]
    table = tables(frame(*rows))["gauss"]["estimates"]
    assert list(table["method"]) == ["nerd#2", "nerd#1"]
    assert list(table["points"]) == [2, 1]
    assert list(table["mean_abs_error_bits"]) == pytest.approx([0.1, 0.5])
    text = format_rankings(frame(*rows))
    assert "nerd variants differ in: nerd#2: steps=1000; nerd#1: steps=100" in text
    assert "lr=" not in text


def test_reference_without_exact_rd_is_the_tightest_upper_bound():
    # "crossing" has the lowest rates but lies below the lower bound "low": not a sound upper bound
    curve = {
        "loose": [(0.25, 1.3), (0.5, 0.8)],
        "tight": [(0.25, 1.1), (0.5, 0.6)],
        "crossing": [(0.25, 0.5), (0.5, 0.3)],
        "est": [(0.25, 0.9), (0.5, 0.4)],
        "low": [(0.25, 0.8)],
    }
    kind = {"est": "estimate", "low": "lower"}
    rows = [
        point(m, r, d, exact=False, bound=kind.get(m, "upper"), target=f"D={d}")
        for m, pts in curve.items()
        for d, r in pts
    ]
    codec_d = math.sqrt(0.125)  # halfway between 0.25 and 0.5 in log(D): R_ref = 0.85
    rows += [
        point("codec", 1.0, codec_d, exact=False, method_kind="codec", bound="operational"),
        point("codec", 1.0, 0.1, exact=False, method_kind="codec", bound="operational", target="D=0.1"),
    ]
    lb = frame(*rows)
    name, ref = reference_curve(lb)
    assert name == "tight (upper bound)"
    assert ref(np.array([0.25, codec_d, 0.5])) == pytest.approx([1.1, 0.85, 0.6])
    assert np.isnan(ref(np.array([0.1, 0.9]))).all()
    codecs = tables(lb)["gauss"]["codecs"]
    assert codecs.attrs["reference"] == "tight (upper bound)"
    assert codecs["mean_gap_bits"].iloc[0] == pytest.approx(0.15)
    assert "codecs (reference: tight (upper bound))" in format_rankings(lb)
    # without upper bounds the lowest estimate is the reference
    assert reference_curve(lb[lb["bound"] != "upper"])[0] == "est (estimate)"


def test_bd_rate_hand_computed():
    rates, dists = np.array([0.5, 1.0, 2.0, 3.0]), np.array([0.5, 0.25, 0.0625, 0.015625])
    assert bd_rate(rates, dists, 2 * rates, dists) == pytest.approx(100.0, abs=1e-6)
    assert bd_rate(rates, dists, 0.5 * rates, dists) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(rates, dists, rates[:1], dists[:1]) is None
    assert bd_rate(rates, dists, [1.0, 1.0], [0.25, 0.25]) is None  # one distinct point
    assert bd_rate(rates, dists, [0.1, 0.2], [0.9, 0.8]) is None  # distortion ranges apart


def test_codec_bd_rate_against_exact_rd():
    rows = [
        point("c", 2 * gaussian_rd(d), d, method_kind="codec", bound="operational", target=f"D={d}")
        for d in (0.5, 0.25, 0.125)
    ]
    rows.append(point("single", 1.0, 0.25, method_kind="codec", bound="operational"))
    table = by_method(tables(frame(*rows))["gauss"]["codecs"])
    assert table.loc["c", "bd_rate_pct"] == pytest.approx(100.0, abs=1e-6)
    assert np.isnan(table.loc["single", "bd_rate_pct"])


def test_failed_cells_are_listed_and_excluded():
    rows = [
        point("ok-method", 1.1, 0.25, target="R=1"),
        point(
            "broken",
            None,
            None,
            target="R=1,R=2",
            status="error",
            target_distortion=None,
            error="RuntimeError: boom\nTraceback line",
        ),
    ]
    lb = frame(*rows)
    assert list(tables(lb)["gauss"]["estimates"]["method"]) == ["ok-method"]
    text = format_rankings(lb)
    assert "1 failed cell(s) or target(s)" in text and "RuntimeError: boom" in text and "Traceback" not in text
    assert "R=1,R=2" in text
    only_failed = tables(lb[lb["status"] == "error"])
    assert only_failed == {}


def test_flagged_points_are_counted():
    rows = [
        point("m", 1.1, 0.25, target="R=1"),
        point("m", 1.1, 0.27, target="R=1", seed=1, target_distortion=0.25, status="off_target"),
        point("m", 1.1, 0.125, target="D=0.125", converged=False, status="not_converged", near_ceiling=True),
    ]
    table = by_method(tables(frame(*rows))["gauss"]["estimates"])
    assert table.loc["m", "flagged"] == 2
    assert table.loc["m", "near_ceiling"] == 1
    text = format_rankings(frame(*rows))
    assert "2 flagged point(s) (not_converged 1, off_target 1)" in text
    assert "0 flagged point(s)" in format_rankings(frame(rows[0]))


def test_estimates_without_exact_rd_are_not_ranked():
    rows = [point("zeta", 1.0, 0.25, exact=False), point("alpha", 2.0, 0.25, exact=False)]
    table = tables(frame(*rows))["gauss"]["estimates"]
    assert list(table["method"]) == ["alpha", "zeta"]
    assert list(table["rank"]) == ["-", "-"]
    assert "mean_abs_error_bits" not in table
    assert "no exact R(D): estimates are not ranked" in format_rankings(frame(*rows))


def test_seeds_give_t_intervals_and_overlapping_variants_share_a_rank():
    """Three seeds each: a's per-seed errors (0.1, 0.3, 0.2), b's (0.25, 0.35, 0.3), c one
    seed of error 1.0; 95 % Student-t half-widths t(0.975, 2) sd / sqrt(3): a and b overlap."""
    rows = [point("a", 1.0 + e, 0.25, target="R=1", seed=s) for s, e in enumerate((0.1, 0.3, 0.2))]
    rows += [point("b", 1.0 + e, 0.25, target="R=1", seed=s) for s, e in enumerate((0.25, 0.35, 0.3))]
    rows += [point("c", 2.0, 0.25, target="R=1")]
    result = tables(frame(*rows))["gauss"]["estimates"]
    table = by_method(result)
    t = scipy.stats.t.ppf(0.975, 2)
    assert table.loc["a", "mean_abs_error_bits_ci95"] == pytest.approx(t * np.std([0.1, 0.3, 0.2], ddof=1) / np.sqrt(3))
    assert table.loc["b", "seeds"] == 3 and table.loc["c", "seeds"] == 1
    assert np.isnan(table.loc["c", "mean_abs_error_bits_ci95"])
    assert list(table["rank"]) == [1, 1, 3]
    assert any("95% Student-t confidence interval" in note for note in result.attrs["notes"])
    assert "mean_abs_error_bits_ci95" in format_rankings(frame(*rows))


def test_separated_intervals_are_not_tied():
    rows = [point("a", 1.0 + e, 0.25, target="R=1", seed=s) for s, e in enumerate((0.10, 0.11, 0.12))]
    rows += [point("b", 1.0 + e, 0.25, target="R=1", seed=s) for s, e in enumerate((0.30, 0.31, 0.32))]
    assert list(tables(frame(*rows))["gauss"]["estimates"]["rank"]) == [1, 2]


def test_wall_seconds_sum_over_distinct_cells():
    rows = [point("curve", 1.1, d, target=f"D={d}", cell_id="cell-1", wall_seconds=10.0) for d in (0.25, 0.5)]
    rows.append(point("curve", 1.1, 0.25, target="D=0.25", seed=1, cell_id="cell-2", wall_seconds=5.0))
    table = by_method(tables(frame(*rows))["gauss"]["estimates"])
    assert table.loc["curve", "wall_seconds"] == pytest.approx(15.0)


def test_empty_frame():
    assert format_rankings(frame()) == "(no results)"
    assert tables(frame()) == {}
