"""The training loop the built-in neural plugins share: Adam (fused) with a cosine decay of the
learning rate at the end and a NaN check, the steps at which a Lagrange multiplier is
recalibrated, and wall / CPU timing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

#: Fraction of the steps, at the end, over which :func:`optimize` decays the learning rate.
DECAY_FRACTION = 0.3
#: :func:`optimize` checks the loss for NaN / inf every this many steps (and at the last).
CHECK_EVERY = 50


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
