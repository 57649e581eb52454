"""Blahut-Arimoto on a whole curve: separate ``estimate`` calls against one ``curve`` call.

For each source at its default targets, with ``blahut-arimoto``'s default-profile settings,
in one process:

* (a) one ``estimate`` per target as before the curve method: each builds its own problem,
  starts cold and recomputes the distances every pass (the estimator's distance cache off,
  ``CACHE_BLOCKS = 0``);
* (a') the same with the distance cache on (which changes no number: checked);
* (b) one ``curve`` call: one problem, targets from the highest rate down, each warm-started
  from the previous one.

Per target it prints, for (a) and (b), the rate, Blahut's lower bound and their gap (bits),
the distortion against the target and the BA iterations; then the wall seconds and the
ratios. Both stop on the same certificate, so their rates agree to within the two gaps plus
the slope times the difference of their distortions (each within ``distortion_rtol`` of
the target): columns ``|dR|`` and ``allowed``, in bits.

    OMP_NUM_THREADS=1 python benchmarks/ba_curve.py
    OMP_NUM_THREADS=1 python benchmarks/ba_curve.py --sources bernoulli --seed 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

from rdbench.interfaces import RDPoint
from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.blahut_arimoto import estimator as ba_estimator

SOURCES = ("gaussian-m20", "digits", "bernoulli")


def row(point: RDPoint, target: float) -> str:
    """rate, lower, gap (bits), distortion, D / target - 1, iterations, converged."""
    gap = point.details["certificate_gap_bits"]
    return (
        f"{point.rate_bits:8.4f} {point.rate_lower_bits:8.4f} {gap:8.1e} {point.distortion:10.5g} "
        f"{point.distortion / target - 1:+8.1e} {point.details['iterations']:5d} "
        f"{'yes' if point.details['converged'] else 'no':>4}"
    )


def allowed(a: RDPoint, b: RDPoint) -> float:
    """Bits two certified points of one curve may differ by: both gaps plus slope x |D_a - D_b|."""
    slope = max(a.details["slope_bits"], b.details["slope_bits"])
    gaps = a.details["certificate_gap_bits"] + b.details["certificate_gap_bits"]
    return gaps + slope * abs(a.distortion - b.distortion)


def timed(run: Callable[[], list[RDPoint]]) -> tuple[list[RDPoint], float]:
    start = time.perf_counter()
    points = run()
    return points, time.perf_counter() - start


def compare(name: str, seed: int) -> None:
    registry = get_registry()
    entry = registry.get("source", name)
    source = entry.create({})
    texts = entry.record.default_targets("default")
    targets = [Target.parse(t).resolve(source) for t in texts]
    settings = registry.get("estimator", "blahut-arimoto").record.settings("default")
    estimator = ba_estimator.BlahutArimoto(**settings)

    def separate() -> list[RDPoint]:
        return [estimator.estimate(source, t, seed)[0] for t in targets]

    with mock.patch.object(ba_estimator, "CACHE_BLOCKS", 0):
        before, before_s = timed(separate)
    cached, cached_s = timed(separate)
    together, curve_s = timed(lambda: [points[0] for points in estimator.curve(source, targets, seed)])

    problem, mode = estimator.problem(source, seed)
    tol = settings["tol_bits"] if mode == "discrete" else settings["empirical_tol_bits"]
    print(
        f"\n{name}: {mode}, {problem.n_rows} x {problem.n_reproductions}, stop at gap <= {tol:g} bits "
        f"and |D / target - 1| <= {settings['distortion_rtol']:g}"
    )
    head = f"{'rate':>8} {'lower':>8} {'gap':>8} {'D':>10} {'D/tgt-1':>8} {'iters':>5} {'conv':>4}"
    print(f"{'':12} {'target D':>10} | (a) separate: {head} | (b) curve: {head} | {'|dR|':>8} {'allowed':>8}")
    for text, target, a, b in zip(texts, targets, before, together):
        print(
            f"{text:12} {target.distortion:10.5g} | {'':14}{row(a, target.distortion)} | "
            f"{'':11}{row(b, target.distortion)} | {abs(a.rate_bits - b.rate_bits):8.1e} {allowed(a, b):8.1e}"
        )
    iterations = [sum(p.details["iterations"] for p in points) for points in (before, together)]
    print(
        f"wall: (a) {before_s:.2f} s, {iterations[0]} iterations; (a') {cached_s:.2f} s, same points: "
        f"{cached == before}; (b) {curve_s:.2f} s, {iterations[1]} iterations"
    )
    print(
        f"(a)/(b) = {before_s / curve_s:.2f}, (a')/(b) = {cached_s / curve_s:.2f} "
        f"(distance matrix cached: {problem.cached})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.sources:
        compare(name, args.seed)


if __name__ == "__main__":
    main()
