"""NERD-RCC's channel: Q*_Y as the push-forward of N(0, I) through a NERD generator, beta* from NERD.

The generator and beta* come from a NERD generator file (the ``generator.pt`` artifact of a
``nerd`` cell, see :mod:`rdbench_plugins.nerd.storage`); C is NERD's rate estimate at that
point. Candidate coordinates are the flattened reproductions; d is the source's measure.

The generator may draw candidates in bfloat16 (``candidate_dtype``): its linear and
convolutional layers then run under bfloat16 autocast, faster on a CPU with bfloat16 units
(``benchmarks/rcc_images.py`` prints the samples per second and the largest difference from
float32 draws). The candidates are still float32 arrays, drawn alike by encoder and decoder,
so the code stays exact; its proposal is the bfloat16 generator's push-forward, which differs
from NERD's float32 one by bfloat16 rounding (8 significant bits per activation).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rdbench.interfaces import RDPoint, Source
from rdbench.targets import Target
from rdbench_plugins._precision import checked_dtype, computing_in
from rdbench_plugins.budgets import candidate_dtype_of
from rdbench_plugins.nerd.storage import load_generator, read_generator_file
from rdbench_plugins.rcc.channels import Channel


class NerdChannel(Channel):
    """A trained NERD generator G and its slope: Y = G(Z), Z ~ N(0, I_latent).

    generator_file: the file's bytes. rate_bits: C, NERD's rate estimate at the generator's
    point (bits per realization). info: extra numbers for the results (NERD's details).
    candidate_dtype: ``float32`` or ``bfloat16`` (see the module docstring); None: by the
    kind of realization (:data:`rdbench_plugins.budgets.CANDIDATE_DTYPES`).
    """

    name = "nerd"

    def __init__(
        self,
        generator_file: bytes,
        rate_bits: float,
        source: Source,
        info: Mapping[str, Any] | None = None,
        candidate_dtype: str | None = None,
    ):
        data = read_generator_file(generator_file)
        config = data["config"]
        if tuple(config["shape"]) != tuple(source.shape):
            raise ValueError(
                f"the NERD generator makes realizations of shape {tuple(config['shape'])}, "
                f"the source's are {tuple(source.shape)}"
            )
        beta = float(data["beta"])
        if not (math.isfinite(beta) and beta <= 0):
            raise ValueError(f"the NERD generator's beta must be finite and <= 0, got {beta!r}")
        rate = float(rate_bits)
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"the rate parameter must be a finite number >= 0 bits, got {rate_bits!r}")
        self.beta = beta
        self.rate_bits = rate
        self.dim = math.prod(source.shape)
        self.distortion = source.distortion
        self._shape = tuple(source.shape)
        self._latent = int(config["latent_dim"])
        self._generator = load_generator(generator_file).for_sampling()
        self.candidate_dtype = checked_dtype("candidate_dtype", candidate_dtype or candidate_dtype_of(source.shape))
        self._info = dict(info or {})

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], rate_bits: float | None, source: Source, candidate_dtype: str | None = None
    ) -> NerdChannel:
        """A generator file written by a NERD cell, with the rate NERD reported for it."""
        if rate_bits is None:
            raise ValueError("a generator file needs generator_rate_bits: the rate NERD reported at that point")
        with open(path, "rb") as stream:
            blob = stream.read()
        return cls(blob, rate_bits, source, {"generator_file": os.fspath(path)}, candidate_dtype)

    @classmethod
    def trained(
        cls,
        source: Source,
        targets: Sequence[Target],
        seed: int,
        profile: str,
        overrides: Mapping[str, Any],
        candidate_dtype: str | None = None,
    ) -> list[NerdChannel]:
        """The channels of the registered ``nerd`` estimator's points (its record's ``profile``
        settings, then ``overrides``) on the source's train split at each of ``targets``: read
        back from the run's ``nerd`` cell with those settings when it is stored, else trained
        here along the curve (:func:`rdbench.cells.estimate`)."""
        from rdbench.cells import estimate

        points = estimate("nerd", overrides, source, targets, seed, profile)
        return [
            cls._from_point(pts[0], target, source, profile, candidate_dtype) for pts, target in zip(points, targets)
        ]

    @classmethod
    def _from_point(
        cls, point: RDPoint, target: Target, source: Source, profile: str, candidate_dtype: str | None
    ) -> NerdChannel:
        if point.rate_ceiling_bits is not None and point.rate_bits > point.rate_ceiling_bits - 1:
            raise ValueError(
                f"NERD's estimate ({point.rate_bits:.2f} bits at D = {point.distortion:.4g}) is within 1 bit of "
                f"its log2 M ceiling ({point.rate_ceiling_bits:.1f} bits): its generator did not learn a usable "
                f"Q*_Y for {target}; give NERD a larger budget through the codec's settings nerd "
                f"(e.g. --set pfr-nerd.nerd='{{\"max_steps\": 8000}}') or nerd_profile"
            )
        info = {
            "nerd_rate_bits": point.rate_bits,
            "nerd_distortion": point.distortion,
            "nerd_steps": point.details.get("steps"),
            "nerd_train_seconds": point.details.get("train_seconds"),
            "nerd_profile": profile,
            "nerd_cell": point.details.get("reused_cell"),
        }
        return cls(point.artifacts["generator.pt"], max(point.rate_bits, 0.0), source, info, candidate_dtype)

    @torch.no_grad()
    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """G(z) for z ~ N(0, I) drawn by torch (faster than numpy) from a seed taken from rng,
        computed in ``candidate_dtype``."""
        z = torch.randn(n, self._latent, generator=torch.Generator().manual_seed(int(rng.integers(2**63))))
        with computing_in(self.candidate_dtype):
            y = self._generator(z).reshape(n, self.dim)
        return np.ascontiguousarray(y.float().numpy(), dtype=np.float32)

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).reshape(self.dim)

    def reproduce(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(self._shape)

    def details(self) -> dict[str, Any]:
        return {**super().details(), **self._info, "candidate_dtype": self.candidate_dtype}
