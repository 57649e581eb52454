"""Mixed precision: the heavy layers of a training step in bfloat16, every measurement in
float32; and :func:`computing_in`, the one switch to bfloat16 autocast (NERD-RCC draws its
image candidates through it).

A module that mixes in :class:`MixedPrecision` runs the layers it chooses under
``torch.autocast(dtype=torch.bfloat16)`` only during a training step: ``train_dtype`` is
``"bfloat16"``, the module is in training mode and gradients are on. Evaluation, calibration,
read-outs and coding (``eval()`` or ``no_grad``) compute in float32, so every reported number
is a float32 measurement of the trained network; bfloat16 only changes the optimization path.
Matrix products and convolutions are what autocast lowers; the layers that produce latents,
statistics or outputs stay in float32 (each module says which).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from rdbench_plugins.budgets import DTYPES, train_dtype_of


def checked_dtype(setting: str, dtype: str) -> str:
    """``dtype`` if it is one of :data:`~rdbench_plugins.budgets.DTYPES`, else a ValueError naming ``setting``."""
    if dtype not in DTYPES:
        raise ValueError(f"{setting} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def computing_in(dtype: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` for ``dtype`` ``"bfloat16"``; a no-op for ``"float32"``."""
    if checked_dtype("dtype", dtype) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


class MixedPrecision:
    """Mixin for an ``nn.Module`` with layers that may train in bfloat16 (see the module docstring)."""

    train_dtype: str = "float32"

    def mixed(self, device: torch.device) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on ``device`` during a training step in bfloat16, else a no-op."""
        training = self.training and torch.is_grad_enabled()  # type: ignore[attr-defined]
        return computing_in(self.train_dtype if training else "float32", device)


def use_train_dtype(module: nn.Module, train_dtype: str | None, shape: tuple[int, ...] = ()) -> nn.Module:
    """Set ``train_dtype`` (one of :data:`~rdbench_plugins.budgets.DTYPES`; None: the default
    for realizations of ``shape``, :func:`~rdbench_plugins.budgets.train_dtype_of`) on every
    :class:`MixedPrecision` submodule of ``module`` (itself included); returns ``module``."""
    dtype = checked_dtype("train_dtype", train_dtype or train_dtype_of(shape))
    for sub in module.modules():
        if isinstance(sub, MixedPrecision):
            sub.train_dtype = dtype
    return module
