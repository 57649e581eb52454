"""Where the slope solve of NERD's and WGD's training steps spends its time, on this CPU.

    python benchmarks/beta_solve.py [--threads 1] [--repeats 30]

Each NERD and WGD training step solves D(beta) = D* on its B x M distances
(:func:`rdbench_plugins._dual.solve_beta`, Newton in log(-beta), warm-started from the
previous step's slope). For the batch shapes of the built-in budgets (B x M = 2^20
float32 distances for image generators, 2^18 for vectors) this prints, measured in one run:

* milliseconds per warm-started solve and its Newton evaluations (a warm start 5 % off the
  root, as from one step to the next);
* milliseconds of each operation of one evaluation (:func:`~rdbench_plugins._dual.channel_stats`
  on the :class:`~rdbench_plugins._dual.Shifted` distances), and of the shift itself, which a
  solve computes once.

Before the shift was shared, every evaluation recomputed it; its line is what each later
evaluation of a solve saves.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from conv_bf16 import timed_ms  # mean milliseconds after warm-up calls

from rdbench_plugins._dual import Shifted, Workspace, channel_stats, solve_beta
from rdbench_plugins._logdomain import floor_exponents_

SHAPES = [(256, 4096), (1024, 1024), (256, 1024)]


def operations(d: torch.Tensor, beta: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The operations of one channel_stats evaluation, each on its own buffers."""
    s = Shifted.of(d, Workspace())
    w, total = s.weights, torch.ones(d.shape[0], dtype=torch.float64)
    scale = beta.to(d.dtype)

    def exponentiate() -> None:
        torch.mul(s.shifted, scale, out=w)
        floor_exponents_(w).exp_()

    return {
        "shift (once per solve)": lambda: Shifted.of(d, Workspace()),
        "beta * shifted, floor, exp": exponentiate,
        "row sums in float64": lambda: w.sum(-1, dtype=torch.float64),
        "normalize": lambda: w.div_(total.to(d.dtype)[:, None]),
        "two weighted means": lambda: (torch.linalg.vecdot(w, s.shifted), torch.linalg.vecdot(w, s.squared)),
        "whole evaluation": lambda: channel_stats(s, beta),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a suite cell uses 1)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    for b, m in SHAPES:
        d = torch.rand(b, m, generator=torch.Generator().manual_seed(0)) * 10
        target = float(0.5 * (d.amin(-1).mean() + d.mean()))
        root = solve_beta(d, target).beta
        workspace = Workspace()

        def warm_solve(d=d, target=target, start=root * 1.05, workspace=workspace) -> int:
            return solve_beta(d, target, start, workspace=workspace).iterations

        evaluations, solve = warm_solve(), timed_ms(warm_solve, args.repeats)
        print(f"\nB x M = {b} x {m}: {solve:.2f} ms per warm-started solve, {evaluations} evaluations")
        for name, work in operations(d, root).items():
            print(f"  {name:28s} {timed_ms(work, args.repeats):7.3f} ms")


if __name__ == "__main__":
    main()
