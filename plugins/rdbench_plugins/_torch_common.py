"""Torch helpers the built-in neural plugins share (``ntc``, ``sandwich``, ``nerd``).

The vector network (a linear map plus an MLP correction), the differentiable distortion
measures, seeded construction, the Adam loop with its cosine learning-rate decay and NaN
check, wall / CPU timing, and the rule that recalibrates a Lagrange multiplier lambda (bits
per unit distortion) toward a target distortion. The convolutional stacks for images are in
:mod:`rdbench_plugins._conv`. Importing this module imports torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

Distortion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Fraction of the steps, at the end, over which :func:`optimize` decays the learning rate.
DECAY_FRACTION = 0.3
#: :func:`optimize` checks the loss for NaN / inf every this many steps (and at the last).
CHECK_EVERY = 50
#: Largest factor one calibration step may change lambda by.
MAX_LAMBDA_FACTOR = 8.0


class LinearPlusMLP(nn.Module):
    """x -> W x + b + MLP(x): (N, d_in) -> (N, d_out), GELU hidden layers of width ``hidden``.

    b and the MLP's last layer start at zero, so the map starts linear; W starts as the
    identity when square and ``identity`` is set.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int, layers: int = 2, identity: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        if identity and d_in == d_out:
            nn.init.eye_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        widths = [d_in] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.GELU()]
        last = nn.Linear(widths[-1], d_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*blocks, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


def _per_realization(error: torch.Tensor) -> torch.Tensor:
    return error.flatten(1).sum(1) if error.dim() > 1 else error


def torch_distortion(name: str, owner: str) -> Distortion:
    """d(x, y) per realization, differentiable: (N, ...) x2 -> (N,); ``owner`` names the
    method in the error for a measure other than squared or absolute error."""
    if name == "squared_error":
        return lambda x, y: _per_realization((x - y).square())
    if name == "absolute_error":
        return lambda x, y: _per_realization((x - y).abs())
    raise ValueError(f"{owner} trains on squared_error or absolute_error distortion, not {name!r}")


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global torch generator seeded, leaving it as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def require_finite(what: str, value: torch.Tensor | float) -> None:
    """Raise FloatingPointError naming ``what`` if any entry of value is NaN or infinite."""
    ok = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
    if not ok:
        raise FloatingPointError(f"{what} is not finite (NaN or inf); no number is reported")


@dataclass
class Clock:
    """Wall and CPU seconds since construction (CPU: this process, all threads)."""

    wall0: float = 0.0
    cpu0: float = 0.0

    def __post_init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, time.process_time() - self.cpu0


def adam(parameters: Iterable[nn.Parameter] | Iterable[dict], lr: float) -> torch.optim.Adam:
    """torch's Adam with its fused kernel (one kernel for all parameters; the per-tensor loop
    is the slowest part of a step for the small networks here), the same update rule."""
    return torch.optim.Adam(parameters, lr=lr, fused=True)


def optimize(
    parameters: Iterable[nn.Parameter] | Iterable[dict],
    loss_at: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    what: str,
    decay_fraction: float = DECAY_FRACTION,
    after_step: Callable[[int], None] | None = None,
) -> None:
    """Adam on ``loss_at(step)`` for ``steps`` steps.

    ``parameters``: parameters, or torch parameter groups (dicts), a group's own ``lr``
    replacing ``lr`` for it. Each learning rate is constant, then decays (cosine, from its
    value to 2% of it) over the last ``decay_fraction`` of the steps. ``after_step(step)`` runs
    after each update. A NaN or inf loss raises FloatingPointError naming ``what``.
    """
    optimizer = adam(parameters, lr)
    initial = [group["lr"] for group in optimizer.param_groups]
    flat = int(steps * (1 - decay_fraction))
    for step in range(steps):
        if step >= flat:
            progress = (step - flat) / max(1, steps - flat)
            factor = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))
            for group, group_lr in zip(optimizer.param_groups, initial):
                group["lr"] = group_lr * factor
        loss = loss_at(step)
        if step % CHECK_EVERY == 0 or step == steps - 1:
            require_finite(f"{what}: the training loss at step {step}", loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)


def calibration_checkpoints(steps: int, rounds: int) -> set[int]:
    """Step counts after which :func:`optimize` (default decay) recalibrates lambda:
    ``rounds`` times, evenly over its constant-learning-rate part."""
    flat = int(steps * (1 - DECAY_FRACTION))
    return {flat * (i + 1) // rounds for i in range(rounds)} if rounds else set()


#: ``lambda_rule`` of a warm-started fit along a curve whose lambda is :func:`warm_lambda`'s.
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
