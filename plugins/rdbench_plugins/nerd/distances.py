"""Pairwise distortion matrices in torch, differentiable in the reproductions.

NERD needs d(x, y) differentiable in y (paper Sec. IV-F); the measures supported are the
squared error ||x - y||_2^2 and the absolute error ||x - y||_1, summed over a realization as
everywhere in rdbench.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rdbench.distortion import AbsoluteError, Distortion, SquaredError

Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def squared_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (n, k), y (M, k) -> (n, M): ||x_i - y_j||^2 through one matrix product."""
    d = torch.addmm((y * y).sum(1)[None, :], x, y.T, alpha=-2.0)
    return d.add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0)  # rounding can leave tiny negatives


def absolute_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (n, k), y (M, k) -> (n, M): ||x_i - y_j||_1."""
    return torch.cdist(x, y, p=1.0)


def pairwise_for(distortion: Distortion) -> Pairwise:
    """The torch pairwise function of a source's distortion measure; ValueError if unsupported."""
    if isinstance(distortion, SquaredError):
        return squared_error
    if isinstance(distortion, AbsoluteError):
        return absolute_error
    raise ValueError(
        f"nerd needs a distortion differentiable in the reproduction (squared_error or "
        f"absolute_error); the source's is {distortion.name!r}"
    )
