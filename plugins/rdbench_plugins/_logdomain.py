"""Exponentials of log-domain values without the CPU's slow path.

torch's vectorized exp on a CPU is an order of magnitude slower where its result is
subnormal or zero (float32 arguments below about -87, float64 below about -708, and -inf
itself) than elsewhere. The log-sum-exps of NERD, WGD and the sandwich lower bound shift
their terms to a maximum of 0 and raise those below :data:`NEGLIGIBLE_EXPONENT` to it before
exponentiating: each such term then weighs exp(-70) < 4e-31 of the largest, so a sum over
fewer than 10^14 terms moves by less than float64's rounding, and a supremum over such sums
can only grow (a lower bound built on it stays valid).
"""

from __future__ import annotations

import torch

#: Shifted exponents below this are raised to it before exp (see the module docstring).
NEGLIGIBLE_EXPONENT = -70.0


def floor_exponents_(shifted: torch.Tensor) -> torch.Tensor:
    """Raise, in place, the entries of ``shifted`` (exponents shifted to a maximum of 0) below
    :data:`NEGLIGIBLE_EXPONENT` to it; returns it."""
    return shifted.clamp_min_(NEGLIGIBLE_EXPONENT)
