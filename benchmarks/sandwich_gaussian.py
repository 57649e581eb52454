"""Sandwich bounds on Gaussian sources with exact R(D): are they bounds, how tight, how fast?

    python benchmarks/sandwich_gaussian.py [--profile default] [--threads 1] [--rates 0.5,1,2]

Sources: unit-variance Gaussians in 2 and 4 dimensions (upper and lower bound) and the
paper's m = 20 preset ``gaussian-m20`` (upper bound). Each point is run at a slope target,
slope = |R'(D)| at the distortion where the exact R(D) equals each of ``--rates`` bits.

* upper (at the D the beta-VAE reaches): holds if R_U >= R(D) - 2 SE (SE = ``gap_se_bits``,
  the delta-method SE of R_U - R(D)); tight if R_U - R(D) <= 0.1 bits.
* lower (the line at the exact tangent point): holds if R_L <= R(D) + 2 SE (SE of the
  intercept); tight if R(D) - R_L <= 0.3 bits, required only where the exact intercept
  R(D) + lambda D, which the estimate cannot exceed, is well below its log2 k ceiling (at most
  half of it; the estimator flags points above that ``near_ceiling``).

Rates are bits per realization; distortion is squared error summed over the components.
Wall and CPU seconds are per point (training and evaluation), CPU over all threads.
"""

from __future__ import annotations

import argparse
import time

import torch

from rdbench.registry import get_registry
from rdbench.spec import resolve_settings
from rdbench.targets import Target


def run(name: str, source, slope: float, profile: str, seed: int):
    entry = get_registry().get("estimator", name)
    estimator = entry.create(resolve_settings(entry, entry.record.settings(profile), source))
    t0, c0 = time.perf_counter(), time.process_time()
    (point,) = estimator.estimate(source, Target.parse(f"slope={slope!r}"), seed)
    return point, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rates", default="0.5,1,2", help="R(D) in bits at the three slopes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = get_registry()
    rates = [float(r) for r in args.rates.split(",")]
    cases = [
        ("gaussian 2-d", registry.get("source", "gaussian").create({"variances": [1.0, 1.0]}), True),
        ("gaussian 4-d", registry.get("source", "gaussian").create({"variances": [1.0] * 4}), True),
        ("gaussian-m20", registry.get("source", "gaussian-m20").create({}), False),
    ]
    t_start, c_start = time.perf_counter(), time.process_time()
    print(f"profile={args.profile} torch threads={args.threads} seed={args.seed}")
    columns = (
        "source",
        "kind",
        "R@slope",
        "slope",
        "D",
        "R(D)",
        "rate",
        "gap",
        "SE",
        "holds",
        "tight",
        "ceil",
        "wall s",
        "cpu s",
    )
    widths = (12, 5, 7, 7, 7, 7, 7, 7, 6, 5, 5, 5, 7, 6)
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    failures = 0
    for label, source, with_lower in cases:
        for rate in rates:
            slope = abs(source.slope(source.distortion_at_rate(rate)))
            for name in ("sandwich-upper", "sandwich-lower") if with_lower else ("sandwich-upper",):
                point, wall, cpu = run(name, source, slope, args.profile, args.seed)
                exact = source.rate_distortion(point.distortion)
                gap = point.rate_bits - exact
                if point.bound == "upper":
                    se, ceiling = point.details["gap_se_bits"], None
                    holds, tight = gap >= -2 * se, gap <= 0.1
                else:
                    se, ceiling = point.details["intercept_se_bits"], point.details["intercept_ceiling_bits"]
                    holds = gap <= 2 * se
                    tight = -gap <= 0.3 if exact + slope * point.distortion <= ceiling / 2 else None
                failures += (not holds) + (tight is False)
                print(
                    f"{label:>12} {point.bound:>5} {rate:7.2f} {slope:7.3f} {point.distortion:7.3f} {exact:7.3f} "
                    f"{point.rate_bits:7.3f} {gap:+7.3f} {se:6.3f} {'yes' if holds else 'NO':>5} "
                    f"{'-' if tight is None else 'yes' if tight else 'NO':>5} {'-' if ceiling is None else f'{ceiling:.0f}':>5} "
                    f"{wall:7.1f} {cpu:6.1f}",
                    flush=True,
                )
    wall, cpu = time.perf_counter() - t_start, time.process_time() - c_start
    print(f"\n{failures} check(s) failed; total {wall:.0f} s wall, {cpu:.0f} s CPU")
    print("(gap = bound - R(D) in bits; ceil = log2 k, the most the lower bound's intercept can reach)")


if __name__ == "__main__":
    main()
