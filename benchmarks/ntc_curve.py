"""NTC along a curve: warm-started fits (one curve cell) against separate fits per target.

    python benchmarks/ntc_curve.py [--threads 1] [--n-test 2000] [--digits] [--warm-fraction F]

For each (codec, source, targets): (a) one :func:`rdbench.evaluation.evaluate_codec` per target
with a fresh codec (a cell per target), (b) one :func:`rdbench.evaluation.evaluate_codec_curve`
(``NTC.fit_curve``: each target warm-started from the previous one). Settings are the default
profile's, resolved as the runner does at plan time. Per target: the rate (bits per
realization, from the real bitstream), the distortion against the target's, the exact R(D)
at that distortion and the gap, the training seconds and main steps. Per case and overall:
the wall-time and CPU-time ratios (a)/(b), both measured in this run (CPU time is the steadier
one on a shared machine), and the mean gap difference (b) - (a).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from rdbench import Source
from rdbench.evaluation import evaluate_codec, evaluate_codec_curve
from rdbench.interfaces import RDPoint
from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.budgets import resolve_ntc


@dataclass
class Case:
    codec: str
    label: str
    source: Source
    targets: list[str]


def settings_for(codec: str, source: Source, warm_fraction: float | None) -> dict:
    """The default profile's settings, resolved for ``source`` as at plan time."""
    settings = dict(get_registry().get("codec", codec).record.settings("default"))
    if warm_fraction is not None:
        settings["warm_fraction"] = warm_fraction
    return resolve_ntc(settings, source)


def gap(source: Source, point: RDPoint) -> float | None:
    """Rate above the exact R(D) at the point's distortion, bits per realization (None without R(D))."""
    return point.rate_bits - source.rate_distortion(point.distortion) if source.has_exact_rd else None


def run_case(case: Case, n_test: int, seed: int, warm_fraction: float | None) -> tuple[list[float], list[float]]:
    """Print (a) and (b) for one case; returns ([wall (a), wall (b), CPU (a), CPU (b)] in
    seconds, gap differences (b) - (a) in bits)."""
    entry = get_registry().get("codec", case.codec)
    settings = settings_for(case.codec, case.source, warm_fraction)
    targets = [Target.parse(t).resolve(case.source) for t in case.targets]
    t0, c0 = time.perf_counter(), time.process_time()
    separate = [evaluate_codec(entry.create(settings), case.source, t, seed, n_test) for t in targets]
    t1, c1 = time.perf_counter(), time.process_time()
    per_target, errors = evaluate_codec_curve(entry.create(settings), case.source, targets, seed, n_test)
    if errors:
        raise RuntimeError("; ".join(f"{t}: {m}" for t, m in errors.items()))
    curve = [points[0] for points in per_target]
    t2, c2 = time.perf_counter(), time.process_time()
    print(
        f"\n== {case.codec} on {case.label} (warm_fraction={settings['warm_fraction']}, steps={settings['steps']}) =="
    )
    print(
        f"{'mode':>8} {'target':>11} {'rate':>7} {'D':>9} {'D target':>9} {'R(D)':>7} {'gap':>7} {'train s':>8} {'main':>5} {'warm':>5} {'lambda':>8}"
    )
    diffs = []
    for target, a, b in zip(targets, separate, curve):
        for mode, p in (("separate", a), ("curve", b)):
            g = gap(case.source, p)
            rd = "n/a" if g is None else f"{p.rate_bits - g:7.3f}"
            print(
                f"{mode:>8} {str(target):>11} {p.rate_bits:7.3f} {p.distortion:9.4f} {target.distortion:9.4f} {rd:>7} "
                f"{'n/a' if g is None else f'{g:7.3f}':>7} {p.details['train_seconds']:8.1f} {p.details['main_steps']:5d} "
                f"{str(p.details['warm_start']):>5} {p.details['slope_bits']:8.3f}"
            )
        ga, gb = gap(case.source, a), gap(case.source, b)
        if ga is not None:
            diffs.append(gb - ga)
    times = [t1 - t0, t2 - t1, c1 - c0, c2 - c1]
    mean = f"{sum(diffs) / len(diffs):+.3f} bits" if diffs else "n/a (no exact R(D))"
    print(f"{summary(times)}; mean gap (b)-(a) {mean}")
    return times, diffs


def summary(times: list[float]) -> str:
    """Wall and CPU seconds of (a) and (b), and their ratios (a)/(b)."""
    wall_a, wall_b, cpu_a, cpu_b = times
    return (
        f"wall (a) separate {wall_a:.1f} s, (b) curve {wall_b:.1f} s, ratio (a)/(b) {wall_a / wall_b:.2f}; "
        f"CPU {cpu_a:.1f} s / {cpu_b:.1f} s, ratio {cpu_a / cpu_b:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--n-test", type=int, default=2000, help="test realizations per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", action="store_true", help="also ntc on digits at D/Dmax=0.3,0.45,0.6")
    parser.add_argument("--warm-fraction", type=float, default=None, help="override the default warm_fraction")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    m20 = registry.get("source", "gaussian-m20").create({})
    unit2 = registry.get("source", "gaussian").create({"variances": [1.0, 1.0]})
    rates = ["R=4", "R=2", "R=1"]
    cases = [
        Case("ntc", "gaussian-m20", m20, rates),
        Case("block-ntc", "gaussian-m20", m20, rates),
        Case("ntc", "gaussian (2-d, unit variances)", unit2, rates),
    ]
    if args.digits:
        digits = registry.get("source", "digits").create({})
        cases.append(Case("ntc", "digits", digits, ["D/Dmax=0.3", "D/Dmax=0.45", "D/Dmax=0.6"]))
    print(f"torch threads={args.threads} n_test={args.n_test} seed={args.seed} profile=default")
    totals = [0.0] * 4
    all_diffs: list[float] = []
    for case in cases:
        times, diffs = run_case(case, args.n_test, args.seed, args.warm_fraction)
        totals = [a + b for a, b in zip(totals, times)]
        all_diffs += diffs
    print(
        f"\nall cases: {summary(totals)}; "
        f"mean gap (b)-(a) over {len(all_diffs)} points with exact R(D): {sum(all_diffs) / len(all_diffs):+.3f} bits"
    )


if __name__ == "__main__":
    main()
