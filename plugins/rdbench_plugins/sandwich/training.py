"""What both bounds share: data as tensors, the residual MLP, the Adam loop, timing,
finiteness checks and Monte-Carlo statistics.

Realizations of any shape are flattened to vectors of ``dims = prod(source.shape)``
components, and the networks are MLPs on those vectors (no convolutional networks yet).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rdbench.interfaces import Source, Split

#: Fraction of the steps, at the end, over which the learning rate decays (cosine, to 2%).
DECAY_FRACTION = 0.3
#: Losses are checked for NaN / inf every this many steps (and at the last step).
CHECK_EVERY = 50


def samples(source: Source, n: int, seed: int, split: Split, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``source.sample(n, seed, split)`` flattened to (n, dims)."""
    x = np.asarray(source.sample(n, seed, split), dtype=np.float64).reshape(n, -1)
    return torch.as_tensor(x, dtype=dtype, device=device)


class ResidualMLP(nn.Module):
    """(N, d_in) -> (N, d_out): a linear map plus an MLP (SiLU) whose last layer starts at zero,
    so that a network starts as, and can stay, the linear map."""

    def __init__(self, d_in: int, d_out: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        widths = [d_in] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Linear(a, b), nn.SiLU()]
        last = nn.Linear(widths[-1], d_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*body, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


def check_settings(owner: str, whole: dict[str, tuple[Any, int]], positive: dict[str, Any]) -> None:
    """Raise ValueError naming the first setting that is not a whole number >= its least value
    (``whole``: name -> (value, least)) or not a finite number > 0 (``positive``: name -> value)."""
    for name, (value, least) in whole.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < least:
            raise ValueError(f"{owner}: {name} must be a whole number >= {least}, got {value!r}")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{owner}: {name} must be a positive number, got {value!r}")


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


def optimize(
    parameters: list[nn.Parameter],
    loss_at: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    what: str,
    after_step: Callable[[int], None] | None = None,
) -> None:
    """Adam on ``loss_at(step)`` for ``steps`` steps.

    The learning rate is constant, then decays (cosine, to 2%) over the last
    :data:`DECAY_FRACTION` of the steps. ``after_step(step)`` runs after each update. A NaN or
    inf loss raises FloatingPointError naming ``what``.
    """
    optimizer = torch.optim.Adam(parameters, lr=lr)
    flat = int(steps * (1 - DECAY_FRACTION))
    for step in range(steps):
        if step >= flat:
            progress = (step - flat) / max(1, steps - flat)
            for group in optimizer.param_groups:
                group["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
        loss = loss_at(step)
        if step % CHECK_EVERY == 0 or step == steps - 1:
            require_finite(f"{what}: the training loss at step {step}", loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step)


@dataclass(frozen=True)
class MeanSE:
    """Mean of n >= 2 i.i.d. Monte-Carlo values and its standard error std / sqrt(n)."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor, what: str) -> MeanSE:
        values = values.detach().double().flatten()
        require_finite(what, values)
        n = values.numel()
        return cls(float(values.mean()), float(values.std(correction=1)) / math.sqrt(n), n)
