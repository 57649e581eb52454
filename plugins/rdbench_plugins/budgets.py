"""Training budgets by the kind of realization, resolved at plan time (torch-free).

Settings left at None take the budget of the source's kind, so that a stored cell says
exactly how many steps ran (see ``PluginRecord.resolve``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: NERD's schedule and generator by generator kind (see :func:`nerd_kind`): a conv generator
#: step costs several FC ones at the same M, so images get fewer steps and smaller batches
#: (M = 4096 suits rates up to log2(M) minus the read-out's 6-bit margin). Images larger than
#: :data:`LARGE_IMAGE_PIXELS` (28 x 28 MNIST) get half the conv channels, M <= 2048 and a
#: schedule that can reach its plateaus within max_steps (window 25, two lr drops: 300 steps
#: at the least, where 50 and 4 need 650): ``benchmarks/paper_images.py`` prints what it reaches.
#: ``pairs`` (B x M distances a step) is 2^18 for the FC generator, whose step cost is the
#: distances (``benchmarks/nerd_accuracy.py`` prints errors within their standard errors of
#: those at 2^20), and 2^20 for conv ones: with 2^19 the image estimates come out higher
#: (worse), by more than their seed-to-seed spread.
#: The 8 x 8 ``conv`` budget's max_steps can end before its last plateau too: at a high rate
#: on digits a cold generator trains for hundreds of steps before its batches reach D* at all
#: (``benchmarks/paper_images.py`` prints each point's estimate and whether it converged).
NERD_BUDGETS = {
    "fc": {"max_steps": 4000, "m_train_max": 16384, "pairs": 2**18, "channels": None, "window": 50, "lr_drops": 4},
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
    "vector": {"steps": 2500, "finetune_steps": 500, "density_steps": 500, "warm_fraction": 0.4},
    "image": {"steps": 1200, "finetune_steps": 300, "density_steps": 300, "warm_fraction": 1.0},
}

#: The sandwich bounds' and WGD's budgets by the kind of realization: vectors keep their
#: accuracy with half the steps (the lower bound: half the mode search per training step)
#: that images get (``benchmarks/sandwich_curve.py`` and ``benchmarks/estimators_compare.py``
#: print the vector points; on images fewer steps loosen the upper bound by bits).
SANDWICH_UPPER_BUDGETS = {"vector": {"steps": 2500}, "image": {"steps": 5000}}
SANDWICH_LOWER_BUDGETS = {
    "vector": {"train_starts": 8, "train_iterations": 10},
    "image": {"train_starts": 16, "train_iterations": 20},
}
WGD_BUDGETS = {"vector": {"steps": 200, "warm_steps": 100}, "image": {"steps": 400, "warm_steps": 200}}


#: The dtype the conv layers of a training step compute in, by image size: larger images than
#: :data:`LARGE_IMAGE_PIXELS` train them in bfloat16 (:mod:`rdbench_plugins._precision`;
#: everything measured stays float32), where it pays (``benchmarks/conv_bf16.py`` prints the
#: step times); vectors and small images in float32.
TRAIN_DTYPES = {"small": "float32", "large": "bfloat16"}
#: The values a ``train_dtype`` setting takes.
DTYPES: tuple[str, ...] = ("float32", "bfloat16")


#: The dtype NERD-RCC's generator draws candidates in, by the kind of realization
#: (:class:`rdbench_plugins.rcc.learned.NerdChannel`): the conv generator of images in
#: bfloat16, which draws faster where the CPU has bfloat16 units (``benchmarks/rcc_images.py``
#: prints both speeds).
CANDIDATE_DTYPES = {"vector": "float32", "image": "bfloat16"}


def is_image(shape: tuple[int, ...]) -> bool:
    """Realizations of shape (C, H, W) get the image budgets and architectures."""
    return len(shape) == 3


def is_large_image(shape: tuple[int, ...]) -> bool:
    """Images of more than :data:`LARGE_IMAGE_PIXELS` pixels (H x W)."""
    return is_image(shape) and shape[1] * shape[2] > LARGE_IMAGE_PIXELS


def with_budget(settings: Mapping[str, Any], budget: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with each key of ``budget`` that is None replaced by the budget's value."""
    return {k: (budget[k] if v is None and k in budget else v) for k, v in settings.items()}


def train_dtype_of(shape: tuple[int, ...]) -> str:
    """The ``train_dtype`` of realizations of ``shape`` (:data:`TRAIN_DTYPES`)."""
    return TRAIN_DTYPES["large" if is_large_image(tuple(shape)) else "small"]


def candidate_dtype_of(shape: tuple[int, ...]) -> str:
    """The ``candidate_dtype`` of realizations of ``shape`` (:data:`CANDIDATE_DTYPES`)."""
    return CANDIDATE_DTYPES["image" if is_image(tuple(shape)) else "vector"]


def resolve_rcc(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NERD-RCC's settings with the ``candidate_dtype`` of the source's kind filled in."""
    return with_budget(settings, {"candidate_dtype": candidate_dtype_of(source.shape)})


def nerd_kind(shape: tuple[int, ...]) -> str:
    """The key of :data:`NERD_BUDGETS` for realizations of ``shape``."""
    if not is_image(shape):
        return "fc"
    return "conv-large" if is_large_image(shape) else "conv"


def resolve_nerd(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NERD's settings with the budget of its generator kind filled in."""
    return with_budget(
        settings, {**NERD_BUDGETS[nerd_kind(tuple(source.shape))], "train_dtype": train_dtype_of(source.shape)}
    )


def _by_kind(settings: Mapping[str, Any], source: Any, budgets: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """``settings`` with the ``image`` or ``vector`` budget of ``budgets`` and the source's
    ``train_dtype`` filled in."""
    budget = budgets["image" if is_image(tuple(source.shape)) else "vector"]
    return with_budget(settings, {**budget, "train_dtype": train_dtype_of(source.shape)})


def resolve_ntc(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """NTC's settings with the step counts of the source's kind filled in."""
    return _by_kind(settings, source, NTC_BUDGETS)


def resolve_block_ntc(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """:func:`resolve_ntc`, refusing at plan time image blocks the ``grid`` layout cannot form."""
    b = settings["block_size"]
    if is_image(tuple(source.shape)) and settings["layout"] == "grid" and math.isqrt(b) ** 2 != b:
        raise ValueError(
            f"block-ntc.block_size={b}: the grid layout stitches images into a g x g grid, so on images "
            "block_size must be a square (4, 9, ...); or --set block-ntc.layout=channels"
        )
    return resolve_ntc(settings, source)


def resolve_sandwich_upper(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """The sandwich upper bound's settings with the steps of the source's kind filled in."""
    return _by_kind(settings, source, SANDWICH_UPPER_BUDGETS)


def resolve_sandwich_lower(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """The sandwich lower bound's settings with the mode search of the source's kind filled in."""
    return _by_kind(settings, source, SANDWICH_LOWER_BUDGETS)


def resolve_wgd(settings: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """WGD's settings with the steps of the source's kind filled in."""
    return _by_kind(settings, source, WGD_BUDGETS)
