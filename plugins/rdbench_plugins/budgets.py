"""Training budgets by the kind of realization, resolved at plan time (torch-free).

Settings left at None take the budget of the source's kind, so that a stored cell says
exactly how many steps ran (see ``PluginRecord.resolve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: NERD's ``max_steps`` / ``m_train_max`` by generator kind: a conv generator step costs
#: several FC ones at the same M, so images get fewer steps and smaller batches (M = 4096
#: suits rates up to log2(M) minus the read-out's 6-bit margin).
NERD_BUDGETS = {"fc": {"max_steps": 4000, "m_train_max": 16384}, "conv": {"max_steps": 600, "m_train_max": 4096}}
#: NTC's and block-NTC's step counts by the kind of realization, and the share of the main
#: steps a warm-started fit along a curve trains (images keep all: their small budget does
#: not move a model across the large rate steps of an image curve in fewer).
NTC_BUDGETS = {
    "vector": {"steps": 5000, "finetune_steps": 1000, "density_steps": 1000, "warm_fraction": 0.4},
    "image": {"steps": 1200, "finetune_steps": 300, "density_steps": 300, "warm_fraction": 1.0},
}


def is_image(shape: tuple[int, ...]) -> bool:
    """Realizations of shape (C, H, W) get the image budgets and architectures."""
    return len(shape) == 3


def with_budget(settings: Mapping[str, Any], budget: Mapping[str, int]) -> dict[str, Any]:
    """``settings`` with each key of ``budget`` that is None replaced by the budget's value."""
    return {k: (budget[k] if v is None and k in budget else v) for k, v in settings.items()}


def resolve_nerd(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NERD's settings with the budget of its generator kind filled in."""
    return with_budget(settings, NERD_BUDGETS["conv" if is_image(tuple(source.shape)) else "fc"])


def resolve_ntc(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NTC's settings with the step counts of the source's kind filled in."""
    return with_budget(settings, NTC_BUDGETS["image" if is_image(tuple(source.shape)) else "vector"])
