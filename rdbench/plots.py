"""R-D plots: one figure per source, ``OUT/plots/<source>.png`` (and inline SVG for the HTML report).

Each figure shows the exact R(D) where the source knows it, every estimator's curve (an
interval as a shaded band; upper bounds dashed, lower bounds dotted, and the region between
the tightest upper and lower bound shaded), codec points, and, when there are codecs, the
one-shot guarantee R + log2(R + 1) + 5 of reverse channel coding, drawn from the codec
rankings' reference curve alone (:func:`rdbench.rankings.reference_curve`).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LINESTYLE = {"estimate": "-", "upper": "--", "lower": ":"}
MEASURE_LABEL = {
    "squared_error": "squared error",
    "absolute_error": "absolute error",
    "hamming": "Hamming distortion",
}


def _exact_curve(rows: pd.DataFrame, rate_max: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(D, R) of the source's exact R(D), or None when unknown or its plugin is unavailable."""
    from rdbench.registry import get_registry

    try:
        entry = get_registry().get("source", rows["source"].iloc[0])
        source = entry.create(json.loads(rows["source_settings"].iloc[0]))
    except Exception:  # noqa: BLE001 - the plot is still useful without the exact curve
        return None
    if not source.has_exact_rd or source.d_max is None:
        return None
    d_lo = source.distortion_at_rate(rate_max) or 1e-3 * source.d_max
    grid = np.linspace(d_lo, source.d_max, 200)
    rates = [source.rate_distortion(d) for d in grid]
    keep = [r is not None for r in rates]
    if not any(keep):
        return None
    return grid[keep], np.array([r for r in rates if r is not None], dtype=float)


def _band(ax, curves: list[pd.DataFrame], pick, color: str, label: str) -> None:
    """Shade between two families of curves on their common distortion range."""
    lo_d = max(c["distortion"].min() for c in curves)
    hi_d = min(c["distortion"].max() for c in curves)
    if not hi_d > lo_d:
        return
    grid = np.linspace(lo_d, hi_d, 100)
    ys = [np.interp(grid, c["distortion"], c["rate_bits"]) for c in curves]
    lower, upper = pick(ys)
    ax.fill_between(grid, lower, upper, color=color, alpha=0.12, label=label, linewidth=0)


def _guarantee_reference(
    rows: pd.DataFrame, exact: tuple[np.ndarray, np.ndarray] | None
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(name, D, R) of the one curve the codec rankings use as reference, or None.

    The exact R(D) (the analytic curve where the source's plugin is available, else the
    points' own exact rates), else the single estimator variant
    :func:`rdbench.rankings.reference_curve` picks, drawn over its own distortion range."""
    from rdbench.rankings import reference_curve

    ref = reference_curve(rows)
    if ref is None:
        return None
    name, curve = ref
    if name == "exact R(D)" and exact is not None:
        return name, *exact
    usable = rows[(rows["status"] != "error") & (rows["distortion"] > 0)]
    if name != "exact R(D)":
        usable = usable[usable["method_kind"] != "codec"]
    if not len(usable):
        return None
    known = usable["distortion"].to_numpy(float)
    # the reference is linear in log(D) between per-target means: a dense log grid plus the
    # points' own distortions draws it without extrapolating
    grid = np.union1d(np.geomspace(known.min(), known.max(), 400), known)
    rates = curve(grid)
    keep = np.isfinite(rates)
    if not keep.any():
        return None
    return name, grid[keep], rates[keep]


def _per_target(points: pd.DataFrame) -> pd.DataFrame:
    """One row per target, sorted by distortion: the means over seeds of distortion, rate and
    interval ends, the seeds' smallest and largest rate, and how many seeds there were."""
    g = points.groupby("target", sort=False)
    out = g[["distortion", "rate_bits", "rate_lower_bits", "rate_upper_bits"]].mean()
    out["rate_min"], out["rate_max"], out["seeds"] = g["rate_bits"].min(), g["rate_bits"].max(), g["seed"].nunique()
    return out.sort_values("distortion").reset_index()


def _figure(rows: pd.DataFrame) -> Any:
    """The R-D figure of one source (a matplotlib Figure; the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7, 5))
    ok = rows[rows["status"] == "ok"]
    source = rows["source"].iloc[0]
    rate_max = float(np.nanmax(ok["rate_bits"])) + 1 if len(ok) else 8.0

    exact = _exact_curve(rows, max(rate_max, 1.0))
    if exact is not None:
        ax.plot(*exact, color="black", lw=2, label="exact R(D)")

    methods = sorted(ok["method"].unique())
    palette = dict(zip(methods, sns.color_palette("tab10", n_colors=max(len(methods), 1))))
    uppers, lowers = [], []
    for (method, kind, bound), points in ok.groupby(["method", "method_kind", "bound"], sort=True):
        color = palette[method]
        if kind == "codec":
            ax.scatter(
                points["distortion"],
                points["rate_bits"],
                color=color,
                marker="s",
                s=40,
                label=f"{method} (codec)",
                zorder=3,
            )
            continue
        group = _per_target(points)
        ax.plot(
            group["distortion"],
            group["rate_bits"],
            LINESTYLE.get(bound, "-"),
            marker="o",
            ms=4,
            color=color,
            label=f"{method} ({bound})" + (" mean, seed range" if (group["seeds"] > 1).any() else ""),
        )
        spread = group[group["seeds"] > 1]
        if len(spread):
            ax.errorbar(
                spread["distortion"],
                spread["rate_bits"],
                yerr=[spread["rate_bits"] - spread["rate_min"], spread["rate_max"] - spread["rate_bits"]],
                fmt="none",
                ecolor=color,
                capsize=3,
                lw=1,
            )
        have = group["rate_lower_bits"].notna() & group["rate_upper_bits"].notna()
        if have.any():
            g = group[have]
            ax.fill_between(
                g["distortion"], g["rate_lower_bits"], g["rate_upper_bits"], color=color, alpha=0.2, linewidth=0
            )
        if bound == "upper":
            uppers.append(group)
        elif bound == "lower":
            lowers.append(group)
    if uppers and lowers:
        _band(
            ax,
            uppers + lowers,
            lambda ys: (np.max(ys[len(uppers) :], 0), np.min(ys[: len(uppers)], 0)),
            "tab:gray",
            "between bounds",
        )

    if (ok["method_kind"] == "codec").any():
        reference = _guarantee_reference(rows, exact)
        if reference is not None:
            name, d, r = reference
            ax.plot(
                d,
                r + np.log2(r + 1) + 5,
                color="tab:red",
                lw=1,
                ls="-.",
                label=f"one-shot guarantee R+log2(R+1)+5\nof {name}",
            )

    measure = rows["distortion_measure"].dropna()
    unit = MEASURE_LABEL.get(measure.iloc[0], measure.iloc[0]) if len(measure) else "distortion"
    ax.set_xlabel(f"distortion per realization ({unit})")
    ax.set_ylabel("rate (bits per realization)")
    ax.set_title(source)
    ax.set_ylim(bottom=0)
    failed, flagged = int((rows["status"] == "error").sum()), int((~rows["status"].isin(["ok", "error"])).sum())
    if failed or flagged:
        text = ", ".join(f"{n} {what}" for n, what in ((failed, "failed"), (flagged, "flagged (not drawn)")) if n)
        ax.text(0.99, 0.99, text, transform=ax.transAxes, ha="right", va="top", color="tab:red")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right" if not (failed or flagged) else "center right")
    fig.tight_layout()
    return fig


def plot_source(rows: pd.DataFrame, path: Path) -> Path:
    """Save the R-D figure of one source's rows as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    fig = _figure(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


_SVG_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def svg_source(rows: pd.DataFrame, id_prefix: str = "") -> str:
    """The R-D figure of one source's rows as an ``<svg>`` element to inline in HTML: text as
    text (system fonts, no embedded or external ones), no XML prolog or metadata, the same
    output for the same rows, every id (and reference to it) prefixed by ``id_prefix`` so that
    several figures can share a page."""
    import matplotlib
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        fig = _figure(rows)
        matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "rdbench"})
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    return _SVG_ID.sub(lambda m: m.group(1) + id_prefix + m.group(2), text).strip()


def plot_all(frame: pd.DataFrame, folder: str | Path) -> list[Path]:
    """One PNG per source in ``folder``."""
    folder = Path(folder)
    return [
        plot_source(rows, folder / f"{re.sub(r'[^A-Za-z0-9._-]', '_', str(source))}.png")
        for source, rows in frame.groupby("source", sort=True)
    ]
