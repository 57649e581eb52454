"""R(D) estimators side by side: NERD, WGD, WGD-hybrid, Blahut-Arimoto and the sandwich bounds.

    python benchmarks/estimators_compare.py [--sources LIST] [--methods LIST] [--profile default]

For each source (default: gaussian-m20, the deconvolution presets, laplace, digits and
mnist-5k when registered) and each method, one curve at the source's default targets of the
profile, computed in this process one after another (so wall times compare on one machine),
with one torch thread. Prints per point: rate (bits per realization), distortion, the exact
R(D) where known, the error, the method's rate ceiling, and the curve's wall and CPU seconds;
then, per method, the largest |error| where R(D) is exact and R(D) <= ceiling - 2, and the
ratio of WGD's wall time to NERD's on each source. Methods that cannot run on a source (a
distortion measure they refuse) are listed as skipped.
"""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
import torch

from rdbench.registry import get_registry
from rdbench.spec import resolve_settings
from rdbench.targets import Target

#: (label, registered estimator, settings over the profile's)
METHODS = {
    "nerd": ("nerd", {}),
    "wgd": ("wgd", {}),
    "wgd-hybrid": ("wgd", {"hybrid": True}),
    # Four times the particles and twice the batch (only when asked for: --methods ...,wgd-2048).
    "wgd-2048": ("wgd", {"n_particles": 2048, "batch": 8192}),
    "blahut-arimoto": ("blahut-arimoto", {}),
    "sandwich-upper": ("sandwich-upper", {}),
    "sandwich-lower": ("sandwich-lower", {}),
}
SOURCES = ["gaussian-m20", "deconv-sphere-d2", "deconv-sphere-d5", "deconv-sphere-d10", "deconv-mixture", "laplace"]
SOURCES += ["digits", "mnist-5k"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_curve(method: str, source_name: str, profile: str) -> list[dict]:
    registry = get_registry()
    source_entry = registry.get("source", source_name)
    source = source_entry.create(source_entry.record.settings(profile))
    name, extra = METHODS[method]
    entry = registry.get("estimator", name)
    settings = resolve_settings(entry, {**entry.record.settings(profile), **extra}, source)
    estimator = entry.create(settings)
    targets = [Target.parse(t).resolve(source) for t in source_entry.record.targets[profile]]
    t0, c0 = time.perf_counter(), cpu_seconds()
    curve = estimator.curve(source, targets, 0)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rows = []
    for target, points in zip(targets, curve):
        point = points[0]
        exact = source.rate_distortion(point.distortion) if source.has_exact_rd else None
        rows.append(
            {
                "source": source_name,
                "method": method,
                "bound": point.bound,
                "target": str(target),
                "rate_bits": point.rate_bits,
                "distortion": point.distortion,
                "target_distortion": target.distortion,
                "exact_bits": exact,
                "error_bits": None if exact is None else point.rate_bits - exact,
                "ceiling_bits": point.rate_ceiling_bits,
                "converged": point.details.get("converged"),
                "curve_wall_s": wall,
                "curve_cpu_s": cpu,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m != "wgd-2048"))
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registered = set(get_registry().entries("source"))
    rows, skipped = [], []
    for source_name in args.sources.split(","):
        if source_name not in registered:
            skipped.append(f"{source_name} (not registered)")
            continue
        for method in args.methods.split(","):
            try:
                rows += run_curve(method, source_name, args.profile)
            except ValueError as error:  # a measure the method refuses
                skipped.append(f"{method} on {source_name}: {str(error).splitlines()[0]}")
            print(f"done {method} on {source_name}", flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_rows", 500)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    usable = table[table["error_bits"].notna() & (table["exact_bits"] <= table["ceiling_bits"].fillna(1e9) - 2)]
    worst = usable.assign(abs_error=usable["error_bits"].abs()).groupby(["method", "source"])["abs_error"].max()
    print("\nlargest |error| (bits) where R(D) is exact and at most ceiling - 2:")
    print(worst.unstack("source").to_string(float_format=lambda v: f"{v:.4f}"))
    walls = table.drop_duplicates(["source", "method"]).pivot(index="source", columns="method", values="curve_wall_s")
    if {"wgd", "nerd"} <= set(walls.columns):
        print("\nwall seconds of a curve, and WGD / NERD:")
        walls["wgd/nerd"] = walls["wgd"] / walls["nerd"]
        print(walls.to_string(float_format=lambda v: f"{v:.2f}"))
    for line in skipped:
        print("skipped:", line)


if __name__ == "__main__":
    main()
