"""The ``blahut-arimoto`` estimator: settings and a source in, one certified R-D point out.

Two modes:

* ``discrete``: the source's exact finite model (``source.discrete()``), reproductions as
  the model gives them. The point is R(D) itself up to the certificate gap.
* ``empirical``: continuous sources, through the empirical distribution of n ``train``
  samples with the reproduction alphabet Y = the same samples (the paper's Fig. 1). The
  point is the R(D) of that n-point problem, which can never exceed log2 n bits (recorded
  as ``rate_ceiling_bits``); it is an estimate of the source's R(D), not a bound on it.

:meth:`BlahutArimoto.curve` solves several targets on one problem (the same samples, the
distance matrix computed once when it fits in ``CACHE_BLOCKS`` blocks), from the highest
rate down, each run warm-started from the previous one's output pmf (floored, see
:meth:`BAProblem.warm_log_q`) and slope. Every point is still stopped by its own
certificate, so it agrees with a cold start's to within the certificate's tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rdbench.distortion import flatten
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.targets import Target, highest_rate_first
from rdbench.units import to_bits, to_nats
from rdbench_plugins.blahut_arimoto.algorithm import CHUNK_BYTES, BAProblem, BAResult

#: The distance matrix is kept in memory when it takes at most this many ``chunk_bytes`` blocks.
CACHE_BLOCKS = 4


class BlahutArimoto(Estimator):
    """Blahut-Arimoto, stopped on Blahut's dual certificate.

    A slope target runs BA at that slope; a distortion target runs one warm-started BA in
    which the slope follows the target (see :meth:`BAProblem.solve_for_distortion`). The
    settings' tolerances are in bits; the algorithm works in nats.

    n_samples: samples for the empirical mode. tol_bits, max_iter (discrete mode): the run
    stops when the certificate gap is at most tol_bits bits, or after max_iter iterations
    with ``converged=False``. empirical_tol_bits, empirical_max_iter: the same in empirical
    mode, where an iteration costs O(n^2) and BA converges slowly. distortion_rtol: relative
    tolerance on the distortion for distortion targets. chunk_bytes: size of one
    (rows, |Y|) float64 block.
    """

    def __init__(
        self,
        n_samples: int = 2000,
        tol_bits: float = 1e-9,
        max_iter: int = 10_000,
        empirical_tol_bits: float = 1e-2,
        empirical_max_iter: int = 200,
        distortion_rtol: float = 1e-4,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.n_samples, self.max_iter, self.empirical_max_iter = n_samples, max_iter, empirical_max_iter
        self.tol_bits, self.empirical_tol_bits = tol_bits, empirical_tol_bits
        self.distortion_rtol, self.chunk_bytes = distortion_rtol, chunk_bytes

    def problem(self, source: Source, seed: int) -> tuple[BAProblem, str]:
        """The finite problem for ``source`` and its mode (``discrete`` or ``empirical``)."""
        model = source.discrete()
        if model is not None:
            x, y = flatten(model.alphabet), flatten(model.reproductions)
            return BAProblem(model.pmf, x, y, source.distortion, self.chunk_bytes, CACHE_BLOCKS), "discrete"
        x = flatten(source.sample(self.n_samples, seed, "train"))
        p = np.full(len(x), 1.0 / len(x))
        return BAProblem(p, x, x, source.distortion, self.chunk_bytes, CACHE_BLOCKS), "empirical"

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        return self.curve(source, [target], seed)[0]

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """One point per target, in the order given, all on one problem.

        Targets are solved from the highest rate down (distortion targets by increasing
        distortion, then slope targets by decreasing slope), each from the previous run's
        output pmf (floored by :meth:`BAProblem.warm_log_q`) and slope; a rate-0 point (a
        target at or above D_max) starts nothing. Unresolved distortion targets are resolved
        here.
        """
        problem, mode = self.problem(source, seed)
        if mode == "discrete":
            tol, max_iter = to_nats(self.tol_bits), self.max_iter
        else:
            tol, max_iter = to_nats(self.empirical_tol_bits), self.empirical_max_iter
        resolved = [t if t.distortion is not None or t.kind == "slope" else t.resolve(source) for t in targets]
        points: dict[int, RDPoint] = {}
        start: BAResult | None = None
        for i in highest_rate_first(resolved):
            target = resolved[i]
            log_q0 = None if start is None else problem.warm_log_q(start.log_q)
            if target.kind == "slope":  # |dR/dD| in bits per unit distortion = s / ln 2
                result = problem.solve(to_nats(target.value), log_q0, tol=tol, max_iter=max_iter)
            else:
                result = problem.solve_for_distortion(
                    float(target.distortion),
                    log_q0=log_q0,
                    s0=None if start is None else start.slope,
                    tol=tol,
                    max_iter=max_iter,
                    rtol=self.distortion_rtol,
                )
            points[i] = self._point(result, problem, mode)
            start = result if result.slope > 0 else None
        return [[points[i]] for i in range(len(resolved))]

    @staticmethod
    def _point(result: BAResult, problem: BAProblem, mode: str) -> RDPoint:
        """The RDPoint of a BA result: the channel's I(X;Y) in bits at its distortion."""
        details: dict[str, Any] = {
            "mode": mode,
            "slope_bits": to_bits(result.slope),
            "iterations": result.iterations,
            "certificate_gap_bits": to_bits(result.gap),
            "converged": bool(result.converged),
        }
        ceiling = None
        if mode == "empirical":
            details["n_samples"] = problem.n_rows
            ceiling = math.log2(problem.n_rows)
        upper = max(to_bits(result.rate_upper), 0.0)
        return RDPoint(
            rate_bits=upper,
            distortion=result.distortion,
            bound="estimate",
            rate_lower_bits=min(max(to_bits(result.rate_lower), 0.0), upper),  # R(D) >= 0 as well
            rate_upper_bits=upper,
            rate_ceiling_bits=ceiling,
            details=details,
        )
