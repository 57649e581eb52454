"""The ``blahut-arimoto`` estimator: settings and a source in, one certified R-D point out.

Two modes:

* ``discrete``: the source's exact finite model (``source.discrete()``), reproductions as
  the model gives them. The point is R(D) itself up to the certificate gap.
* ``empirical``: continuous sources, through the empirical distribution of n ``train``
  samples with the reproduction alphabet Y = the same samples (the paper's Fig. 1). The
  point is the R(D) of that n-point problem, which can never exceed log2 n bits (recorded
  as ``rate_ceiling_bits``); it is an estimate of the source's R(D), not a bound on it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rdbench.distortion import flatten
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.targets import Target

from rdbench_plugins.blahut_arimoto.algorithm import CHUNK_BYTES, BAProblem, BAResult

LN2 = math.log(2.0)


class BlahutArimoto(Estimator):
    """Blahut-Arimoto, stopped on Blahut's dual certificate.

    n_samples: samples for the empirical mode. tol_bits / empirical_tol_bits: stop when the
    certificate gap is at most this many bits (discrete / empirical mode). max_iter: BA
    iterations per solve at one slope. distortion_rtol: relative tolerance on the distortion
    when the slope is searched for a distortion target. chunk_bytes: size of one
    (rows, |Y|) float64 block. max_solves: BA solves allowed in one slope search.
    """

    def __init__(
        self,
        n_samples: int = 2000,
        tol_bits: float = 1e-9,
        empirical_tol_bits: float = 1e-3,
        max_iter: int = 10_000,
        distortion_rtol: float = 1e-4,
        chunk_bytes: int = CHUNK_BYTES,
        max_solves: int = 60,
    ) -> None:
        for name, value in (("n_samples", n_samples), ("max_iter", max_iter), ("chunk_bytes", chunk_bytes),
                            ("max_solves", max_solves)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"blahut-arimoto: {name} must be a positive integer, got {value!r}")
        for name, value in (("tol_bits", tol_bits), ("empirical_tol_bits", empirical_tol_bits),
                            ("distortion_rtol", distortion_rtol)):
            if not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
                raise ValueError(f"blahut-arimoto: {name} must be a finite number >= 0, got {value!r}")
        self.n_samples = int(n_samples)
        self.tol_bits = float(tol_bits)
        self.empirical_tol_bits = float(empirical_tol_bits)
        self.max_iter = int(max_iter)
        self.distortion_rtol = float(distortion_rtol)
        self.chunk_bytes = int(chunk_bytes)
        self.max_solves = int(max_solves)

    def problem(self, source: Source, seed: int) -> tuple[BAProblem, str]:
        """The finite problem for ``source`` and its mode (``discrete`` or ``empirical``)."""
        model = source.discrete()
        if model is not None:
            x, y = flatten(model.alphabet), flatten(model.reproductions)
            return BAProblem(model.pmf, x, y, source.distortion, self.chunk_bytes), "discrete"
        x = flatten(source.sample(self.n_samples, seed, "train"))
        p = np.full(len(x), 1.0 / len(x))
        return BAProblem(p, x, x, source.distortion, self.chunk_bytes), "empirical"

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        problem, mode = self.problem(source, seed)
        tol = (self.tol_bits if mode == "discrete" else self.empirical_tol_bits) * LN2
        if target.kind == "slope":  # |dR/dD| in bits per unit distortion = s / ln 2
            result = problem.solve(target.value * LN2, tol=tol, max_iter=self.max_iter)
        elif target.distortion is None:
            raise ValueError(f"blahut-arimoto: target {target} has no resolved distortion")
        else:
            result = problem.solve_for_distortion(
                target.distortion, tol=tol, max_iter=self.max_iter,
                rtol=self.distortion_rtol, max_solves=self.max_solves,
            )
        return [self._point(result, problem, mode)]

    @staticmethod
    def _point(result: BAResult, problem: BAProblem, mode: str) -> RDPoint:
        """The RDPoint of a BA result: the channel's I(X;Y) in bits at its distortion."""
        details: dict[str, Any] = {
            "mode": mode,
            "slope_nats": result.slope,
            "slope_bits": result.slope / LN2,
            "iterations": result.iterations,
            "solves": result.solves,
            "certificate_gap_bits": result.gap / LN2,
            "converged": bool(result.converged),
        }
        ceiling = None
        if mode == "empirical":
            details["n_samples"] = problem.n_rows
            ceiling = math.log2(problem.n_rows)
        upper = max(result.rate_upper / LN2, 0.0)
        return RDPoint(
            rate_bits=upper,
            distortion=result.distortion,
            bound="estimate",
            rate_lower_bits=min(max(result.rate_lower / LN2, 0.0), upper),  # R(D) >= 0 as well
            rate_upper_bits=upper,
            rate_ceiling_bits=ceiling,
            details=details,
        )
