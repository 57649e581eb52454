"""The encoder's selection (paper Prop. 1) with an exact stopping rule.

K = argmin_i d(x, Y_i) - ln(W_i) / beta* over the codebook's indices (beta* < 0), which is
eq. (26)/(29) in the log domain. Because d >= 0 (in candidate coordinates, see
:mod:`.channels`), the density ratio dQ*_{Y|X=x} / dQ*_Y = exp(beta* d) / E[exp(beta* d)] is
at most 1 / E[exp(beta* d)], and every score is at least ln(W_i) / |beta*|. The weights
increase with i, so once ln(W_i) / |beta*| reaches the best score found, no candidate from i
on can win: the search stops there, with the same K as the infinite search. ``examined`` is
that i (the candidates the rule needed); ``evaluated`` counts whole chunks scored.
With beta* = 0 (Y independent of X) the density ratio is 1 and K = argmin_i W_i = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdbench_plugins.rcc.codebook import Codebook


@dataclass(frozen=True)
class Selection:
    """index: K (0-based). candidate: Y_K in candidate coordinates, (dim,) float32, the
    encoder's copy. examined: search length the stopping rule needed (K < examined <= limit).
    evaluated: candidates scored. capped: the limit was reached before the rule proved K
    (K is then the best of the first ``limit`` candidates)."""

    index: int
    candidate: np.ndarray
    examined: int
    evaluated: int
    capped: bool


def select(codebook: Codebook, message: int, x: np.ndarray) -> Selection:
    """Search message n's codebook for x, given in candidate coordinates ((dim,) float32)."""
    if codebook.channel.beta == 0:
        return Selection(0, codebook.candidates(message, 0)[0].copy(), 1, 0, False)
    best, index, evaluated = np.inf, -1, 0
    candidate = np.zeros(0, dtype=np.float32)
    # Squared error: score + ||x||^2 = base - 2 x.y, so the rule compares log_w with best + ||x||^2.
    shift = float(np.dot(x, x)) if codebook.squared_error else 0.0
    distortion = codebook.channel.distortion
    for chunk in codebook.chunks(message):
        if chunk.log_w[0] >= best:
            return Selection(index, candidate, chunk.start, evaluated, False)
        if codebook.squared_error:
            scores = chunk.base - 2.0 * (chunk.y @ x)
        else:
            scores = chunk.base + distortion.pairwise(x[None, :], chunk.y)[0].astype(np.float32)
        j = int(np.argmin(scores))
        if scores[j] + shift < best:
            best, index = float(scores[j]) + shift, chunk.start + j
            candidate = chunk.y[j].copy()
        evaluated += len(scores)
        stop = int(np.searchsorted(chunk.log_w, best, side="left"))
        if stop < len(scores):
            return Selection(index, candidate, chunk.start + stop, evaluated, False)
    if index < 0:
        raise ValueError("no candidate has a finite score: the channel's candidates are not finite numbers")
    return Selection(index, candidate, codebook.limit, evaluated, True)
