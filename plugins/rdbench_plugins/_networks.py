"""Torch networks the built-in neural plugins share: the vector map (a linear map plus an MLP
correction) and seeded construction. The convolutional stacks for images are in
:mod:`rdbench_plugins._conv`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


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


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global torch generator seeded, leaving it as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
