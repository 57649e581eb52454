"""Training budgets by the kind of realization, resolved at plan time (torch-free).

Settings left at None take the budget of the source's kind, so that a stored cell says
exactly how many steps ran (see ``PluginRecord.resolve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: NERD's schedule and generator by generator kind (see :func:`nerd_kind`): a conv generator
#: step costs several FC ones at the same M, so images get fewer steps and smaller batches
#: (M = 4096 suits rates up to log2(M) minus the read-out's 6-bit margin). Images larger than
#: :data:`LARGE_IMAGE_PIXELS` (28 x 28 MNIST) get half the conv channels, M <= 2048 and a
#: schedule that can reach its plateaus within max_steps (window 25, two lr drops: 300 steps
#: at the least, where 50 and 4 need 650): ``benchmarks/paper_images.py`` prints what it reaches.
#: ``pairs`` (B x M distances a step) is 2^19 for the FC generator, whose step cost is the
#: distances (``benchmarks/nerd_accuracy.py`` prints the same errors as at 2^20), and 2^20 for
#: conv ones, whose cost is the generator's M draws (halving B would save little).
#: The 8 x 8 ``conv`` budget's max_steps can end before its last plateau too: at a high rate
#: on digits a cold generator trains for hundreds of steps before its batches reach D* at all
#: (``benchmarks/paper_images.py`` prints each point's estimate and whether it converged).
NERD_BUDGETS = {
    "fc": {"max_steps": 4000, "m_train_max": 16384, "pairs": 2**19, "channels": None, "window": 50, "lr_drops": 4},
    "conv": {"max_steps": 1000, "m_train_max": 4096, "pairs": 2**20, "channels": 32, "window": 50, "lr_drops": 4},
    "conv-large": {
        "max_steps": 600,
        "m_train_max": 2048,
        "pairs": 2**20,
        "channels": 16,
        "window": 25,
        "lr_drops": 2,
    },
}
#: Images with more pixels (H x W) than this take NERD's ``conv-large`` budget.
LARGE_IMAGE_PIXELS = 256
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


def nerd_kind(shape: tuple[int, ...]) -> str:
    """The key of :data:`NERD_BUDGETS` for realizations of ``shape``."""
    if not is_image(shape):
        return "fc"
    return "conv-large" if shape[1] * shape[2] > LARGE_IMAGE_PIXELS else "conv"


def resolve_nerd(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NERD's settings with the budget of its generator kind filled in."""
    return with_budget(settings, NERD_BUDGETS[nerd_kind(tuple(source.shape))])


def resolve_ntc(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NTC's settings with the step counts of the source's kind filled in."""
    return with_budget(settings, NTC_BUDGETS["image" if is_image(tuple(source.shape)) else "vector"])
