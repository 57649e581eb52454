"""How chunked Blahut-Arimoto scales with n = |Y| on the 20-dim Gaussian of the paper (Fig. 2).

For each n, in a fresh subprocess (so that the peak RSS is per size), it builds the empirical
problem of ``blahut-arimoto`` (n samples, Y = the samples, squared error), times a few BA
iterations at a fixed slope, and compares one iteration with our roofline: one dense float64
product (n x 20) @ (20 x n), computed over the same row chunks (the n x n result never fits).

    python benchmarks/ba_scaling.py                    # n = 2000, 10000, 60000
    python benchmarks/ba_scaling.py --sizes 2000 10000 --iters 3

Columns: seconds per BA iteration, seconds of the chunked matrix product, their ratio, the
tracemalloc peak of Python/numpy allocations and the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from rdbench.distortion import SquaredError
from rdbench_plugins.blahut_arimoto.algorithm import CHUNK_BYTES, BAProblem

DIM = 20


def gaussian_m20(n: int, seed: int) -> np.ndarray:
    """n samples (n, 20) of N(0, V diag(4 exp(-k/16)) V^T), k = 1..20, from the registry if present."""
    try:
        from rdbench.registry import Registry

        source = Registry.discover().get("source", "gaussian-m20").create({})
        return np.asarray(source.sample(n, seed, "train"), dtype=np.float64)
    except Exception:  # noqa: BLE001 - the analytic sources plugin is optional here
        rng = np.random.default_rng(seed)
        scales = np.sqrt(4.0 * np.exp(-np.arange(1, DIM + 1) / 16.0))
        rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        return (rng.standard_normal((n, DIM)) * scales) @ rotation.T


def measure(n: int, iters: int, slope: float, chunk_bytes: int) -> dict[str, float]:
    """Median times of ``iters`` BA iterations and of ``iters`` chunked roofline products.

    Each is preceded by one untimed run (first touch of the buffers, BLAS warm-up).
    """
    tracemalloc.start()
    x = gaussian_m20(n, seed=0)
    problem = BAProblem(np.full(n, 1.0 / n), x, x, SquaredError(), chunk_bytes)
    log_q = problem.uniform_log_q()
    times = []
    for _ in range(iters + 1):
        start = time.perf_counter()
        log_q = problem.solve(slope, log_q, tol=0.0, max_iter=1).log_q  # one BA iteration
        times.append(time.perf_counter() - start)
    per_iter = float(np.median(times[1:]))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    rows = problem.rows_per_chunk
    out = np.empty((rows, n))
    times = []
    for _ in range(iters + 1):
        start = time.perf_counter()
        for first in range(0, n, rows):
            block = x[first : first + rows]
            np.matmul(block, x.T, out=out[: len(block)])
        times.append(time.perf_counter() - start)
    matmul = float(np.median(times[1:]))
    return {
        "n": n,
        "rows_per_chunk": rows,
        "chunks": -(-n // rows),
        "s_per_iter": per_iter,
        "matmul_s": matmul,
        "ratio": per_iter / matmul,
        "tracemalloc_peak_mb": peak / 2**20,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,  # KiB on Linux
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10_000, 60_000])
    parser.add_argument("--iters", type=int, default=3, help="timed BA iterations per size")
    parser.add_argument("--slope", type=float, default=0.5, help="s, nats per unit distortion")
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one size, JSON out
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.iters, args.slope, args.chunk_bytes)))
        return

    print(f"BA iteration vs chunked (n x {DIM}) @ ({DIM} x n) float64 product; s = {args.slope:g} nats/unit")
    print(
        f"{'n':>7} {'rows/chunk':>10} {'chunks':>6} {'s/iter':>9} {'matmul s':>9} {'ratio':>6} "
        f"{'tracemalloc MB':>14} {'max RSS MB':>10}"
    )
    for n in args.sizes:
        command = [
            sys.executable,
            __file__,
            "--worker",
            str(n),
            "--iters",
            str(args.iters),
            "--slope",
            str(args.slope),
            "--chunk-bytes",
            str(args.chunk_bytes),
        ]
        r = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(
            f"{r['n']:>7} {r['rows_per_chunk']:>10} {r['chunks']:>6} {r['s_per_iter']:>9.3f} "
            f"{r['matmul_s']:>9.3f} {r['ratio']:>6.1f} {r['tracemalloc_peak_mb']:>14.1f} {r['max_rss_mb']:>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
