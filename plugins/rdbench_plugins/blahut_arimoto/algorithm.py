"""Blahut-Arimoto in the log domain, over row chunks, with Blahut's dual certificate.

Everything here is in **nats** and float64; the estimator converts to bits at the boundary.
The slope ``s >= 0`` is in nats per unit of distortion (``s = |dR/dD|`` with R in nats).

For a finite problem (source pmf ``p`` on rows x, reproduction alphabet y, distortion d)
one BA iteration at slope s from the output pmf q is (Blahut 1972)::

    log Z_x = logsumexp_y(log q_y - s d_xy)
    P(y|x)  = q_y exp(-s d_xy) / Z_x                       (the channel)
    D       = sum_x p_x sum_y P(y|x) d_xy
    log c_y = logsumexp_x(log p_x - s d_xy - log Z_x)      (q_y c_y is its output pmf)
    upper   = -s D - sum_x p_x log Z_x - sum_y q_y c_y log c_y   (= I(X;Y) of the channel)
    lower   = -s D - sum_x p_x log Z_x - max_y log c_y           (R(D') >= lower - s (D' - D))
    q      <- q c

``upper`` is achievable, so R(D) <= upper; the line ``lower - s (D' - D)`` supports R at
every D'. Their difference ``gap = max_y log c_y - sum_y q_y c_y log c_y >= 0`` is the
stopping rule. ``log c`` is a log-sum-exp over x, never ``(q c) / q``, so it stays exact
for every y, including those whose ``q_y`` has underflowed to 0.

Rows are processed in chunks of about ``chunk_bytes`` per (rows, |Y|) float64 block. By
default the n x |Y| distance matrix is never held at once: each iteration recomputes it chunk
by chunk (squared error in place around one matrix product, other measures by ``pairwise``).
A problem built with ``cache_blocks > 0`` instead computes it once, in the same chunks, and
keeps it when it fits in that many blocks; the iterations are then the same, number for number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from rdbench.distortion import Distortion, SquaredError
from rdbench.units import to_nats

#: Default size of one (rows, |Y|) float64 block; the problem holds two such blocks (or the
#: cached distance matrix and one).
CHUNK_BYTES = 32 * 2**20
#: Stand-in for log 0 in an output pmf (exp of it is exactly 0.0, and it stays finite).
LOG_ZERO = -1e4
#: Largest change of log s in one iteration of :meth:`BAProblem.solve_for_distortion`.
MAX_LOG_STEP = 1.0
#: :meth:`BAProblem.warm_log_q` raises every output probability to at least this over |Y|.
WARM_FLOOR = 4.0


@dataclass(frozen=True)
class BAResult:
    """One channel and its certificate (all rates in nats, per source realization).

    log_q: (|Y|,) log of the channel's output pmf ``q c``, i.e. the next BA iterate (warm start).
    slope: s, nats per unit distortion. distortion: D of the channel.
    rate_upper: I(X;Y) of the channel (R(D) <= rate_upper). rate_lower: Blahut's lower line
    at D (R(D) >= rate_lower). gap: rate_upper - rate_lower >= 0.
    iterations: BA iterations spent. converged: gap <= tol (and, for a distortion target,
    the distortion within tolerance of it).
    """

    log_q: np.ndarray
    slope: float
    distortion: float
    rate_upper: float
    rate_lower: float
    gap: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _Sweep:
    """What one pass over all rows at slope s and output pmf q yields."""

    distortion: float  # D = sum_x p_x E_P[d | x]
    variance: float  # sum_x p_x Var_P[d | x] = -dD/ds at fixed q
    mean_log_z: float  # sum_x p_x log Z_x
    log_c: np.ndarray  # (|Y|,)


class BAProblem:
    """A finite rate-distortion problem, solved by chunked log-domain Blahut-Arimoto.

    p: (n,) source pmf; x: (n, k) flattened source letters; y: (j, k) flattened
    reproductions; measure: the distortion d(x, y) (``measure.pairwise``). Letters with
    p_x = 0 are dropped. chunk_bytes: bytes of one (rows, |Y|) float64 block. cache_blocks:
    keep the whole distance matrix when it takes at most this many blocks (0: never).
    """

    def __init__(
        self,
        p: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        measure: Distortion,
        chunk_bytes: int = CHUNK_BYTES,
        cache_blocks: int = 0,
    ) -> None:
        p = np.asarray(p, dtype=np.float64)
        x, y = np.asarray(x), np.asarray(y)
        if p.ndim != 1 or x.ndim != 2 or y.ndim != 2 or len(p) != len(x) or x.shape[1] != y.shape[1]:
            raise ValueError(f"need p (n,), x (n, k), y (j, k); got {p.shape}, {x.shape}, {y.shape}")
        if len(y) == 0 or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("need a non-empty reproduction alphabet and a finite, non-negative pmf")
        keep = p > 0
        self.p = p[keep] / p[keep].sum()
        self.log_p = np.log(self.p)
        self.x, self.y = x[keep], y
        self.measure = measure
        self.rows_per_chunk = min(len(self.p), max(1, int(chunk_bytes) // (8 * len(y))))
        self._y_sq: np.ndarray | None = None  # ||y||^2 when the squared-error kernel is used
        if type(measure) is SquaredError:
            self.x = np.ascontiguousarray(self.x, dtype=np.float64)
            self.y = np.ascontiguousarray(y, dtype=np.float64)
            self._y_sq = np.einsum("jk,jk->j", self.y, self.y)
        self._w = np.empty((self.rows_per_chunk, len(y)))  # work block of one chunk
        self._range: tuple[float, int, float] | None = None  # distortion_range(), once computed
        self._cache: np.ndarray | None = None  # the whole distance matrix, when kept
        if 8 * self.n_rows * len(y) <= cache_blocks * int(chunk_bytes):
            self._cache = np.empty((self.n_rows, len(y)))
            for rows in self._row_chunks():
                self._distances(rows, self._cache[rows])
        else:
            self._d = np.empty_like(self._w)  # distances of one chunk

    @property
    def n_rows(self) -> int:
        return len(self.p)

    @property
    def n_reproductions(self) -> int:
        return len(self.y)

    def entropy(self) -> float:
        """H(p) in nats: no channel's I(X;Y) exceeds it (log n for n equiprobable samples)."""
        return float(-(self.p @ self.log_p))

    def uniform_log_q(self) -> np.ndarray:
        """(|Y|,) log of the uniform output pmf: the cold start."""
        return np.full(self.n_reproductions, -math.log(self.n_reproductions))

    @property
    def cached(self) -> bool:
        """Whether the distance matrix is held in memory (else recomputed every pass)."""
        return self._cache is not None

    def warm_log_q(self, log_q: np.ndarray) -> np.ndarray:
        """(|Y|,) the start for a neighbouring target from a solved output pmf exp(log_q).

        Every probability is raised to at least WARM_FLOOR / |Y|, then the pmf renormalized:
        the solved pmf's peaks are kept, while no output starts far below the cold start's
        uniform level (BA grows a starved output by only a factor exp(gap) per iteration,
        and a neighbouring slope may need outputs this one has nearly dropped).
        """
        return _normalized(np.maximum(log_q, math.log(WARM_FLOOR / self.n_reproductions)))

    def _row_chunks(self) -> Iterator[slice]:
        for start in range(0, self.n_rows, self.rows_per_chunk):
            yield slice(start, min(start + self.rows_per_chunk, self.n_rows))

    def _distances(self, rows: slice, d: np.ndarray) -> None:
        """Write d(x[rows], y), shape (len(rows), |Y|), into d."""
        if self._y_sq is None:
            d[...] = self.measure.pairwise(self.x[rows], self.y)
        else:  # ||x||^2 + ||y||^2 - 2 x.y, as SquaredError.pairwise, without temporaries
            x = self.x[rows]
            np.matmul(x, self.y.T, out=d)
            d *= -2.0
            d += np.einsum("ik,ik->i", x, x)[:, None]
            d += self._y_sq
            np.maximum(d, 0.0, out=d)

    def _chunks(self) -> Iterator[tuple[slice, np.ndarray]]:
        """(rows, d) with d = d(x[rows], y), shape (len(rows), |Y|) float64.

        d is read-only to the caller: a view of the cached matrix, or of a buffer that the
        next chunk overwrites.
        """
        for rows in self._row_chunks():
            if self._cache is not None:
                yield rows, self._cache[rows]
            else:
                d = self._d[: rows.stop - rows.start]
                self._distances(rows, d)
                yield rows, d

    def distortion_range(self) -> tuple[float, int, float]:
        """(D_max, y*, D_min) of this problem.

        D_max = min_y sum_x p_x d_xy, reached at rate 0 by always reproducing y*;
        D_min = sum_x p_x min_y d_xy, the infimum of distortions at any rate. Computed once.
        """
        if self._range is not None:
            return self._range
        column = np.zeros(self.n_reproductions)
        d_min = 0.0
        for rows, d in self._chunks():
            column += self.p[rows] @ d
            d_min += float(self.p[rows] @ d.min(axis=1))
        best = int(np.argmin(column))
        self._range = (float(column[best]), best, d_min)
        return self._range

    def _sweep(self, s: float, log_q: np.ndarray) -> _Sweep:
        """One pass over all row chunks at slope s (nats/distortion) from output pmf exp(log_q)."""
        col_max = np.full(self.n_reproductions, -np.inf)
        col_sum = np.zeros(self.n_reproductions)
        distortion = variance = mean_log_z = 0.0
        for rows, d in self._chunks():
            w = np.multiply(d, -s, out=self._w[: len(d)])
            w += log_q
            row_max = w.max(axis=1, keepdims=True)
            w -= row_max
            np.exp(w, out=w)  # Z_x P(y|x) / exp(row_max_x), in [0, 1]
            row_sum = w.sum(axis=1)
            log_z = row_max[:, 0] + np.log(row_sum)
            mean = np.einsum("ij,ij->i", w, d) / row_sum  # E_P[d | x]
            mean_square = np.einsum("ij,ij,ij->i", w, d, d) / row_sum
            p = self.p[rows]
            distortion += float(p @ mean)
            variance += float(p @ (mean_square - mean * mean))
            mean_log_z += float(p @ log_z)

            np.multiply(d, -s, out=w)  # log p_x - s d_xy - log Z_x, then exp over columns
            w += (self.log_p[rows] - log_z)[:, None]
            chunk_max = w.max(axis=0)
            w -= chunk_max
            np.exp(w, out=w)
            new_max = np.maximum(col_max, chunk_max)  # streaming log-sum-exp over chunks
            col_sum *= np.exp(col_max - new_max)
            col_sum += w.sum(axis=0) * np.exp(chunk_max - new_max)
            col_max = new_max
        return _Sweep(distortion, variance, mean_log_z, col_max + np.log(col_sum))

    def step(self, s: float, log_q: np.ndarray) -> tuple[BAResult, float]:
        """One BA iteration at slope s from exp(log_q).

        Returns the channel's result (``iterations=1``, ``converged`` unset: False) and
        -dD/ds of the channel at fixed q (a sum of conditional variances of d, >= 0).
        """
        sweep = self._sweep(s, log_q)
        log_q_out = _normalized(log_q + sweep.log_c)  # the output pmf q c of this channel
        mean_log_c = float(np.exp(log_q_out) @ sweep.log_c)
        max_log_c = float(sweep.log_c.max())
        base = -s * sweep.distortion - sweep.mean_log_z
        result = BAResult(
            log_q=log_q_out,
            slope=float(s),
            distortion=sweep.distortion,
            rate_upper=min(base - mean_log_c, self.entropy()),  # I(X;Y) <= H(X): clips rounding
            rate_lower=base - max_log_c,
            gap=max(max_log_c - mean_log_c, 0.0),
            iterations=1,
            converged=False,
        )
        return result, max(sweep.variance, 0.0)

    def solve(
        self,
        s: float,
        log_q0: np.ndarray | None = None,
        *,
        tol: float = to_nats(1e-9),
        max_iter: int = 10_000,
    ) -> BAResult:
        """Iterate BA at slope s from exp(log_q0) (uniform if None) until gap <= tol nats.

        Stops after ``max_iter`` iterations otherwise, with ``converged=False`` and the
        honest gap. The result describes the channel of the last iteration.
        """
        _check(s, max_iter)
        log_q = self.uniform_log_q() if log_q0 is None else _normalized(log_q0)
        for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is returned
            result, _ = self.step(s, log_q)
            if result.gap <= tol:
                break
            log_q = result.log_q
        return _finished(result, iteration, result.gap <= tol)

    def zero_rate(self) -> BAResult:
        """The rate-0 point: always reproduce y*, at distortion D_max (exact, one sweep)."""
        _, best, _ = self.distortion_range()
        log_q = np.full(self.n_reproductions, LOG_ZERO)
        log_q[best] = 0.0
        result, _ = self.step(0.0, log_q)
        return _finished(result, 1, True)

    def solve_for_distortion(
        self,
        target: float,
        *,
        log_q0: np.ndarray | None = None,
        s0: float | None = None,
        tol: float = to_nats(1e-9),
        max_iter: int = 10_000,
        rtol: float = 1e-4,
    ) -> BAResult:
        """The BA channel at the slope where its distortion is within ``rtol`` of ``target``.

        One warm-started BA run in which the slope follows the curve: after each iteration
        a Newton step on log s (dD/dlog s = -s * variance at fixed q) aims the next channel
        at ``target``, safeguarded by a trust region of at most MAX_LOG_STEP that halves
        whenever the distortion error changes sign. Stops when gap <= tol and
        |D / target - 1| <= rtol, or after ``max_iter`` iterations. s0 (nats per unit
        distortion) defaults to 1 / target. Targets at or above D_max give the rate-0 point;
        targets at or below D_min raise ValueError.
        """
        d_max, _, d_min = self.distortion_range()
        if not target > d_min:
            raise ValueError(
                f"distortion {target:g} is not above D_min = {d_min:g}, the least distortion "
                "this reproduction alphabet reaches at any rate"
            )
        if target >= d_max:
            return self.zero_rate()
        u = math.log(s0 if s0 is not None and s0 > 0 else 1.0 / target)
        _check(math.exp(u), max_iter)
        log_q = self.uniform_log_q() if log_q0 is None else _normalized(log_q0)
        radius, last_sign = MAX_LOG_STEP, 0.0
        for iteration in range(1, max_iter + 1):  # noqa: B007 - the count is returned
            result, variance = self.step(math.exp(u), log_q)
            error = result.distortion - target
            reached = abs(error) <= rtol * target
            if reached and result.gap <= tol:
                break
            sign = math.copysign(1.0, error)  # D too large -> larger slope
            radius = radius / 2 if sign == -last_sign else min(2 * radius, MAX_LOG_STEP)
            last_sign = sign
            sensitivity = result.slope * variance  # -dD/dlog s
            newton = error / sensitivity if sensitivity > 0 else sign * radius
            u += min(max(newton, -radius), radius)
            log_q = result.log_q
        return _finished(result, iteration, reached and result.gap <= tol)


def _check(s: float, max_iter: int) -> None:
    if not (s >= 0 and math.isfinite(s)) or max_iter < 1:
        raise ValueError(f"need a finite slope s >= 0 and max_iter >= 1, got s={s!r}, max_iter={max_iter!r}")


def _finished(result: BAResult, iterations: int, converged: bool) -> BAResult:
    return replace(result, iterations=iterations, converged=converged)


def _normalized(log_q: np.ndarray) -> np.ndarray:
    """log of a pmf: log_q shifted so that sum exp(log_q) = 1."""
    log_q = np.asarray(log_q, dtype=np.float64)
    top = log_q.max()
    return log_q - (top + math.log(np.exp(log_q - top).sum()))
