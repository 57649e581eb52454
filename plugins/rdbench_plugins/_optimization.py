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


class FlatAdam:
    """torch's fused Adam on one flat buffer per parameter group: the parameters (and their
    gradients) become views of it, so a step and the zeroing of the gradients are one kernel
    each, whatever the number of tensors (the per-tensor bookkeeping of ``torch.optim.Adam``
    is the slowest part of a step for the small networks here). The update rule and its
    numbers are torch's; unlike ``zero_grad(set_to_none=True)``, a parameter that gets no
    gradient in a step sees a zero one.

    ``parameters``: parameters, or torch parameter groups (dicts), a group's own ``lr``
    replacing ``lr`` for it. Each group's parameters must share a dtype and device.
    """

    def __init__(self, parameters: Iterable[nn.Parameter] | Iterable[dict], lr: float) -> None:
        items = list(parameters)
        groups = items if items and isinstance(items[0], dict) else [{"params": items}]
        seen: set[int] = set()
        flat_groups = []
        self._grads: list[torch.Tensor] = []
        for group in groups:
            params = [p for p in group["params"] if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in params)
            if not params:
                continue
            if len({(p.dtype, p.device) for p in params}) > 1:
                raise ValueError("adam: a parameter group mixes dtypes or devices; give each its own group")
            flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
            flat.grad = torch.zeros_like(flat)
            offset = 0
            for p in params:
                n = p.numel()
                p.data = flat.data[offset : offset + n].view_as(p)
                p.grad = flat.grad[offset : offset + n].view_as(p)
                offset += n
            self._grads.append(flat.grad)
            flat_groups.append({**group, "params": [flat]})
        self.optimizer = torch.optim.Adam(flat_groups, lr=lr, fused=True)

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self) -> None:
        for grad in self._grads:
            grad.zero_()

    def step(self) -> None:
        self.optimizer.step()


def adam(parameters: Iterable[nn.Parameter] | Iterable[dict], lr: float) -> FlatAdam:
    """Adam at learning rate ``lr`` (see :class:`FlatAdam`)."""
    return FlatAdam(parameters, lr)


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
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)


def calibration_checkpoints(steps: int, rounds: int) -> set[int]:
    """Step counts after which :func:`optimize` (default decay) recalibrates lambda:
    ``rounds`` times, evenly over its constant-learning-rate part."""
    flat = int(steps * (1 - DECAY_FRACTION))
    return {flat * (i + 1) // rounds for i in range(rounds)} if rounds else set()
