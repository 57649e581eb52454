"""How the built-in Lagrangian methods (NTC, sandwich bounds) meet a target distortion:
lambda (bits per unit distortion) recalibrated during training and warm-started along a
curve, and the one-knob search after training (:func:`meet_target`). Torch-free."""

from __future__ import annotations

import math
from collections.abc import Callable

#: Largest factor one calibration step may change lambda by.
MAX_LAMBDA_FACTOR = 8.0

#: ``slope_rule`` of a warm-started fit along a curve whose lambda is :func:`warm_lambda`'s.
WARM_RULE = "previous final lambda x slope ratio"


def warm_lambda(previous_final: float, previous_slope: float, slope: float) -> float:
    """Where a warm-started fit along a curve starts lambda: the previous target's final
    (calibrated) lambda times slope / previous_slope (all in bits per unit distortion), so that
    the calibration the previous fit found carries over."""
    return previous_final * slope / previous_slope if previous_slope > 0 else slope


def recalibrated(lam: float, d_val: float, target: float, exponent: float = 1.0) -> float:
    """lambda * (D_val / D_target)^exponent (at most a factor 8 either way). With exponent 1,
    the step that lands on the target where D is proportional to 1/lambda, as at high rate; a
    model that moves only part of the way after a change of lambda (the sandwich upper bound's
    on images) takes a larger exponent. (Secant steps are no better: a warm-started model lags
    behind a change of lambda.)"""
    return lam * min(MAX_LAMBDA_FACTOR, max(1 / MAX_LAMBDA_FACTOR, (d_val / target) ** exponent))


#: :func:`meet_target` stops within this relative distortion of the target.
KNOB_TOLERANCE = 0.002


def meet_target(
    excess: Callable[[float], float], span: float, decreasing: bool, tolerance: float = KNOB_TOLERANCE
) -> float:
    """The knob u in [-span, span] whose excess(u) = ln(D(u) / D_target) is nearest 0 among
    the trials: u = 0 first (training's own model), done when within ``tolerance`` relative
    distortion; else regula falsi with the Illinois modification, bracketed by 0 and the end
    of the range on the target's side (D ``decreasing`` in u, or increasing). Where
    ln D is nearly linear in u this takes a few trials. A target beyond the range's end keeps
    that end."""
    best = (math.inf, 0.0)  # (|D / target - 1|, u) of the best trial

    def trial(u: float) -> float:
        nonlocal best
        value = excess(u)
        best = min(best, (abs(math.expm1(value)), u))
        return value

    a, fa = 0.0, trial(0.0)
    if best[0] > tolerance:
        b = span if (fa > 0) == decreasing else -span
        fb = trial(b)
        for _ in range(40):
            if best[0] <= tolerance or fa * fb > 0:
                break  # met, or the target lies beyond the range's end (the best trial is that end)
            c = b - fb * (b - a) / (fb - fa)
            fc = trial(c)
            if fc * fb < 0:
                a, fa = b, fb
            else:  # the same end is kept: halve its value, so that it moves next time
                fa /= 2
            b, fb = c, fc
    return best[1]
