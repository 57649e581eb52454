"""How the built-in Lagrangian methods (NTC, sandwich bounds) move lambda, in bits per unit
distortion: recalibration toward a target distortion, and the warm start along a curve.
Torch-free."""

from __future__ import annotations

#: Largest factor one calibration step may change lambda by.
MAX_LAMBDA_FACTOR = 8.0

#: ``slope_rule`` of a warm-started fit along a curve whose lambda is :func:`warm_lambda`'s.
WARM_RULE = "previous final lambda x slope ratio"


def warm_lambda(previous_final: float, previous_slope: float, slope: float) -> float:
    """Where a warm-started fit along a curve starts lambda: the previous target's final
    (calibrated) lambda times slope / previous_slope (all in bits per unit distortion), so that
    the calibration the previous fit found carries over."""
    return previous_final * slope / previous_slope if previous_slope > 0 else slope


def recalibrated(lam: float, d_val: float, target: float) -> float:
    """lambda * D_val / D_target (at most a factor 8 either way): the step that lands on the
    target where D is proportional to 1/lambda, as at high rate. (Secant steps are no better:
    a warm-started model lags behind a change of lambda.)"""
    return lam * min(MAX_LAMBDA_FACTOR, max(1 / MAX_LAMBDA_FACTOR, d_val / target))
