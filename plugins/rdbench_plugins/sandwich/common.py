"""What both bounds share: data as tensors, settings checks and Monte-Carlo statistics.

The lower bound flattens realizations of any shape to vectors of ``dims = prod(source.shape)``
components and its log u is an MLP on them
(:class:`rdbench_plugins._networks.LinearPlusMLP`). The upper bound keeps images
(shape (C, H, W)) as images for its convolutional beta-VAE and flattens everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from rdbench.evaluation import standard_error
from rdbench.interfaces import RDPoint, Source, Split
from rdbench.slopes import Slope, steepest_first
from rdbench_plugins._optimization import Clock, require_finite

#: What a fit along a curve hands the next one (a trained network, its slope, its lambda).
State = TypeVar("State")


def samples(
    source: Source, n: int, seed: int, split: Split, device: torch.device, dtype: torch.dtype, flatten: bool = True
) -> torch.Tensor:
    """``source.sample(n, seed, split)`` flattened to (n, dims), or as (n, *source.shape)
    when ``flatten`` is False."""
    x = np.asarray(source.sample(n, seed, split), dtype=np.float64)
    x = x.reshape(n, -1) if flatten else x.reshape(n, *source.shape)
    return torch.as_tensor(x, dtype=dtype, device=device)


@contextmanager
def timed(details: dict[str, Any], phase: str) -> Iterator[None]:
    """Record the block's wall and CPU seconds as ``details[phase + "_seconds"]`` and
    ``details[phase + "_cpu_seconds"]``."""
    clock = Clock()
    yield
    details[f"{phase}_seconds"], details[f"{phase}_cpu_seconds"] = clock.seconds()


def along_curve(
    slopes: Sequence[Slope], fit: Callable[[int, State | None], tuple[RDPoint, State]]
) -> list[list[RDPoint]]:
    """One point per target, in the order of ``slopes``: ``fit(i, previous)`` for each target
    from the steepest slope down, ``previous`` the state the last fit returned (None first)."""
    points: dict[int, RDPoint] = {}
    previous: State | None = None
    for i in steepest_first(slopes):
        points[i], previous = fit(i, previous)
    return [[points[i]] for i in range(len(slopes))]


@dataclass(frozen=True)
class MeanSE:
    """Mean of n >= 2 i.i.d. Monte-Carlo values and its standard error std / sqrt(n)."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: torch.Tensor, what: str) -> MeanSE:
        """From values of any shape (flattened); NaN or inf raises FloatingPointError naming ``what``."""
        values = values.detach().double().flatten().cpu()
        require_finite(what, values)
        se = standard_error(values)
        if se is None:
            raise ValueError(f"{what}: a standard error needs at least 2 values, got {values.numel()}")
        return cls(float(values.mean()), se, values.numel())
