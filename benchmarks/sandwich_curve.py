"""The sandwich bounds along a curve: one warm-started ``curve`` call against separate fits.

    python benchmarks/sandwich_curve.py [--methods sandwich-upper,sandwich-lower] [--threads 1]
                                        [--seed 0] [--digits] [--warm-fraction F]

For each method and source at the source's default-profile targets, with the method's
default-profile settings: (a) one ``estimate`` per target (a fresh network each, as a cell per
target would be), (b) one ``curve`` call (the first target from scratch, each later one from
the previous network with ``warm_fraction`` of the steps). Per target: the bound in bits per
realization, the distortion, the exact R(D) there and the gap bound - R(D) (the upper bound
holds while gap >= -2 SE, the lower while gap <= +2 SE; the smaller |gap|, the tighter), the
SE, the training seconds and steps. Per case and overall: wall and CPU ratios (a)/(b), measured
in this run, and the mean |gap| difference (b) - (a) (negative: the curve is tighter).
"""

from __future__ import annotations

import argparse
import time

import torch
from ntc_curve import summary  # the same (a)/(b) wall and CPU ratios

from rdbench import Source
from rdbench.interfaces import RDPoint
from rdbench.registry import get_registry
from rdbench.spec import resolve_settings
from rdbench.targets import Target


def gap(source: Source, point: RDPoint) -> float | None:
    """bound - R(D) at the point's distortion, bits (None without an exact R(D))."""
    return point.rate_bits - source.rate_distortion(point.distortion) if source.has_exact_rd else None


def run_source(method: str, name: str, source: Source, seed: int, settings: dict) -> tuple[list[float], list[float]]:
    """Print (a) and (b) for one source; returns ([wall (a), wall (b), CPU (a), CPU (b)], |gap| differences)."""
    entry = get_registry().get("estimator", method)
    targets = [Target.parse(t).resolve(source) for t in entry_targets(name)]
    settings = resolve_settings(entry, settings, source)
    t0, c0 = time.perf_counter(), time.process_time()
    separate = [entry.create(settings).estimate(source, t, seed)[0] for t in targets]
    t1, c1 = time.perf_counter(), time.process_time()
    curve = [points[0] for points in entry.create(settings).curve(source, targets, seed)]
    t2, c2 = time.perf_counter(), time.process_time()
    print(f"\n== {method} on {name} (warm_fraction={settings['warm_fraction']}, steps={settings['steps']}) ==")
    print(
        f"{'mode':>8} {'target':>11} {'bound':>7} {'D':>9} {'D target':>9} {'R(D)':>7} {'gap':>7} {'SE':>6} "
        f"{'train s':>8} {'steps':>5}"
    )
    diffs = []
    for target, a, b in zip(targets, separate, curve):
        for mode, p in (("separate", a), ("curve", b)):
            g = gap(source, p)
            rd = "n/a" if g is None else f"{p.rate_bits - g:7.3f}"
            print(
                f"{mode:>8} {str(target):>11} {p.rate_bits:7.3f} {p.distortion:9.4f} {target.distortion:9.4f} "
                f"{rd:>7} {'n/a' if g is None else f'{g:+7.3f}':>7} {se(p):6.3f} "
                f"{p.details['train_seconds']:8.1f} {p.details['steps']:5d}"
            )
        ga, gb = gap(source, a), gap(source, b)
        if ga is not None:
            diffs.append(abs(gb) - abs(ga))
    times = [t1 - t0, t2 - t1, c1 - c0, c2 - c1]
    mean = f"{sum(diffs) / len(diffs):+.3f} bits" if diffs else "n/a (no exact R(D))"
    print(f"{summary(times)}; mean |gap| (b)-(a) {mean}")
    return times, diffs


def se(point: RDPoint) -> float:
    """The point's standard error, bits: of R - R(D) (upper), of the intercept (lower)."""
    return point.details["gap_se_bits"] if point.bound == "upper" else point.details["intercept_se_bits"]


def entry_targets(name: str) -> tuple[str, ...]:
    return get_registry().get("source", name).record.default_targets("default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--methods", default="sandwich-upper,sandwich-lower")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", action="store_true", help="also digits (no exact R(D): calibrated lambda)")
    parser.add_argument("--warm-fraction", type=float, default=None, help="override the default warm_fraction")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    names = ["gaussian", "gaussian-m20"] + (["digits"] if args.digits else [])
    print(f"torch threads={args.threads} seed={args.seed} profile=default")
    totals, all_diffs = [0.0] * 4, []
    for method in args.methods.split(","):
        settings = dict(registry.get("estimator", method).record.settings("default"))
        if args.warm_fraction is not None:
            settings["warm_fraction"] = args.warm_fraction
        for name in names:
            times, diffs = run_source(method, name, registry.get("source", name).create({}), args.seed, settings)
            totals = [a + b for a, b in zip(totals, times)]
            all_diffs += diffs
    print(
        f"\nall cases: {summary(totals)}; "
        f"mean |gap| (b)-(a) over {len(all_diffs)} points with exact R(D): {sum(all_diffs) / len(all_diffs):+.3f} bits"
    )


if __name__ == "__main__":
    main()
