"""NTC and block-NTC on Gaussian sources: gaps to R(D), real-bitstream overhead, training time.

    python benchmarks/ntc_gaussian.py [--profile default] [--threads 1] [--n-test 20000]

1. Unit-variance scalar Gaussian: NTC's gap to R(D) against the entropy-coded scalar
   quantizer's (uniform thresholds, centroid reconstruction; computed numerically), and the
   overhead of the real range-coded stream over the model's ideal code length.
2. The paper's m = 20 Gaussian (``gaussian-m20``): NTC and block-NTC (B = 4) against the exact
   R(D), and against ECSQ of the eigen-components with optimal rate allocation (the best any
   scalar quantizer of the decorrelated components can do).

Rates are bits per realization (the unit Gaussian: per dimension), measured from real
bitstreams by rdbench's own evaluate_codec; training times are per lambda (one target).
"""

from __future__ import annotations

import argparse
import time

import torch

from rdbench import Source
from rdbench.evaluation import evaluate_codec
from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.ntc.ecsq import ecsq_allocation_rate, ecsq_hull, ecsq_rate


def run(codec_name: str, source: Source, target_text: str, profile: str, n_test: int, seed: int) -> tuple[dict, float]:
    entry = get_registry().get("codec", codec_name)
    codec = entry.create(entry.record.settings(profile))
    target = Target.parse(target_text).resolve(source)
    c0 = time.process_time()
    point = evaluate_codec(codec, source, target, seed, n_test)
    return {
        "rate": point.rate_bits,
        "distortion": point.distortion,
        "cpu": time.process_time() - c0,
        **point.details,
    }, target.distortion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--n-test", type=int, default=20_000, help="test realizations per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scalar-targets", default="R=1,R=1.5,R=2,R=3,R=4")
    parser.add_argument("--m20-targets", default="R=1,R=2,R=4,R=6,R=8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    t_start, c_start = time.perf_counter(), time.process_time()
    train_times: list[tuple[str, float, float]] = []
    print(f"profile={args.profile} torch threads={args.threads} n_test={args.n_test} seed={args.seed}")

    unit = registry.get("source", "gaussian").create({"variances": [1.0]})
    print("\n== Unit-variance Gaussian, NTC (bits per dimension) ==")
    print(
        f"{'target':>7} {'rate':>7} {'ideal':>7} {'ovh %':>6} {'D':>8} {'R(D)':>7} {'gap':>6} {'ECSQ':>7} {'ECSQgap':>7} {'excess':>7} {'train s':>8} {'cpu s':>6}"
    )
    for text in args.scalar_targets.split(","):
        r, _ = run("ntc", unit, text, args.profile, args.n_test, args.seed)
        rd = unit.rate_distortion(r["distortion"])
        ecsq = ecsq_rate(r["distortion"]) if r["distortion"] < 1 else 0.0
        gap, ecsq_gap = r["rate"] - rd, ecsq - rd
        train_times.append((f"ntc unit {text}", r["train_seconds"], r["train_cpu_seconds"]))
        print(
            f"{text:>7} {r['rate']:7.4f} {r['ideal_bits']:7.4f} {r['overhead_percent']:6.2f} {r['distortion']:8.5f} {rd:7.4f} "
            f"{gap:6.3f} {ecsq:7.4f} {ecsq_gap:7.3f} {gap - ecsq_gap:+7.3f} {r['train_seconds']:8.1f} {r['train_cpu_seconds']:6.1f}"
        )
    print("(excess = NTC's gap - ECSQ's gap at NTC's distortion; ovh % = real stream over ideal code length)")

    m20 = registry.get("source", "gaussian-m20").create({})
    hull = ecsq_hull()
    print("\n== gaussian-m20 (bits per realization; D summed over the 20 components) ==")
    print(
        f"{'codec':>9} {'target':>6} {'D target':>8} {'rate':>7} {'D':>8} {'R(D)':>7} {'gap':>6} {'ECSQ':>7} {'ovh %':>6} {'lambda':>7} {'train s':>8} {'cpu s':>6}"
    )
    for codec_name in ("ntc", "block-ntc"):
        for text in args.m20_targets.split(","):
            r, d_target = run(codec_name, m20, text, args.profile, args.n_test, args.seed)
            rd = m20.rate_distortion(r["distortion"])
            ecsq = ecsq_allocation_rate(m20.variances, r["distortion"], hull)
            ovh = r["overhead_percent"]
            train_times.append((f"{codec_name} m20 {text}", r["train_seconds"], r["train_cpu_seconds"]))
            print(
                f"{codec_name:>9} {text:>6} {d_target:8.3f} {r['rate']:7.3f} {r['distortion']:8.3f} {rd:7.3f} {r['rate'] - rd:6.3f} "
                f"{ecsq:7.3f} {'n/a' if ovh is None else f'{ovh:6.2f}':>6} {r['slope_bits']:7.3f} {r['train_seconds']:8.1f} {r['train_cpu_seconds']:6.1f}"
            )
    print("(ECSQ = scalar quantization of the eigen-components, rates allocated optimally, at the codec's D)")

    worst = max(train_times, key=lambda t: t[1])
    print(f"\nlongest training per lambda: {worst[1]:.1f} s wall, {worst[2]:.1f} s CPU ({worst[0]})")
    print(f"total: {time.perf_counter() - t_start:.0f} s wall, {time.process_time() - c_start:.0f} s CPU")


if __name__ == "__main__":
    main()
