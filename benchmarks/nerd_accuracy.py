"""NERD accuracy and speed on the paper's Gaussian sources (issue 3's figures).

For each source, the five points where the exact R(D) is 1, 2, 4, 6 and 8 bits are estimated
as one curve (NERD.curve: from the highest rate down, each generator warm-started from its
neighbour's) and printed: target D, achieved D, the estimate R^, the exact R at the achieved
D, the error, its sampling standard error, and the wall time and steps of each point.
The goal: |error| <= 0.05 bits up to 6 bits and <= 0.15 bits at 8, the m=20 curve within
5 minutes of wall time on a 2-core CPU.

    python benchmarks/nerd_accuracy.py [--sources gaussian-m20,gaussian-m40] [--threads 2]
                                       [--seed 0] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.nerd.estimator import NERD

RATES = (1, 2, 4, 6, 8)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(source_name: str, seed: int, settings: dict) -> None:
    source = get_registry().get("source", source_name).create({})
    targets = [Target.parse(f"R={r}").resolve(source) for r in RATES]
    t0, c0 = time.perf_counter(), cpu_seconds()
    points = [p for (p,) in NERD(**settings).curve(source, targets, seed)]
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    print(f"\n{source_name} (seed {seed})")
    print(
        f"{'R(D*)':>6} {'target D':>9} {'achieved D':>10} {'R^':>7} {'exact R':>7} {'error':>7} "
        f"{'stderr':>6} {'wall s':>6} {'steps':>5} {'M':>6}"
    )
    for rate, target, p in zip(RATES, targets, points):
        exact = source.rate_distortion(p.distortion)
        seconds = p.details["train_seconds"] + p.details["readout_seconds"]
        print(
            f"{rate:>6} {target.distortion:>9.4f} {p.distortion:>10.4f} {p.rate_bits:>7.3f} {exact:>7.3f} "
            f"{p.rate_bits - exact:>+7.3f} {p.details['rate_stderr_bits']:>6.3f} {seconds:>6.1f} "
            f"{p.details['steps']:>5} {p.details['m']:>6}"
        )
    print(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU ({torch.get_num_threads()} threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", default="gaussian-m20,gaussian-m40")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a NERD setting (JSON value)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = dict(get_registry().get("estimator", "nerd").record.defaults)
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    for name in args.sources.split(","):
        run(name, args.seed, settings)


if __name__ == "__main__":
    main()
