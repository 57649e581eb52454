"""Units: bits and nats, the slope convention, and the standard ``details`` keys.

Rates are **bits per source realization** everywhere in rdbench's results; methods may work
in nats inside and convert here. A slope is always reported as lambda = |dR/dD| >= 0 in
**bits per unit distortion** (``slope_bits``), whatever sign or unit a method uses inside
(Blahut-Arimoto's s >= 0 in nats, NERD's beta <= 0 in nats, the Lagrangian R + lambda D).
"""

from __future__ import annotations

import math

#: ln 2: nats per bit.
LN2 = math.log(2.0)
#: log2(e): bits per nat.
LOG2E = 1.0 / LN2


def to_bits(value_nats: float) -> float:
    """A rate (or slope) in nats, in bits."""
    return value_nats / LN2


def to_nats(value_bits: float) -> float:
    """A rate (or slope) in bits, in nats."""
    return value_bits * LN2


#: The ``RDPoint.details`` keys with one meaning across methods (a method reports those that
#: apply to it, under these names; anything else it reports is its own).
DETAILS: dict[str, str] = {
    "slope_bits": "lambda = |dR/dD| >= 0 the point was computed at, bits per unit distortion",
    "slope_initial_bits": "where a method that recalibrates lambda started it, bits per unit distortion",
    "slope_rule": "the rule that chose the initial slope (rdbench.slopes)",
    "target_distortion": "the distortion the method aimed at, per realization",
    "converged": "whether the method's own convergence test passed",
    "steps": "optimizer steps (learned methods)",
    "iterations": "iterations of an iterative solver",
    "warm_start": "whether the point started from the previous target's solution along a curve",
    "train_seconds": "wall seconds of training",
    "rate_stderr_bits": "standard error of a Monte-Carlo rate, bits per realization",
    "distortion_stderr": "standard error of a Monte-Carlo distortion, per realization",
    "near_ceiling": "the rate is within the margin of the method's ceiling",
}
