"""The ``ntc`` codec: nonlinear transform coding (Ballé et al. 2021) with a real bitstream.

fit: train the transforms and the factorized density on rate + lambda * distortion (see
:mod:`.training` for how the target sets lambda), then build one quantized integer model
per latent channel. fit_curve: the targets of a curve cell from the highest rate down, each
after the first warm-started from the previous fit with fewer main steps. encode: round the
latents and range-code the whole evaluation set as one message (``stream`` coding) with
:mod:`rdbench.entropy_coding`. decode: range-decode and synthesize. The reconstruction
decode returns is bit for bit the one :meth:`NTC.reconstruct` computes on the encoder's side.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rdbench.distortion import TorchForm
from rdbench.entropy_coding import IntegerModel, decode_symbols, encode_symbols
from rdbench.interfaces import Bits, Codec, Source
from rdbench.slopes import Slope, steepest_first, target_slope
from rdbench.targets import Target
from rdbench_plugins._holdout import held_out
from rdbench_plugins._lagrange import WARM_RULE, warm_lambda
from rdbench_plugins._networks import seeded
from rdbench_plugins._precision import use_train_dtype
from rdbench_plugins.budgets import NTC_BUDGETS, is_image, with_budget
from rdbench_plugins.ntc.model import NTCModel
from rdbench_plugins.ntc.training import START_FACTOR, TrainingLog, initial_step, train


@dataclass(frozen=True)
class StreamStats:
    """The last encoded message: totals over ``realizations`` realizations."""

    realizations: int
    real_bits: int
    ideal_bits: float
    escapes: int

    def details(self) -> dict[str, Any]:
        """Per-realization figures: real bits, ideal bits (-log2 of the model), overhead %."""
        n = max(1, self.realizations)
        return {
            "real_bits": self.real_bits / n,
            "ideal_bits": self.ideal_bits / n,
            "overhead_percent": 100.0 * (self.real_bits / self.ideal_bits - 1) if self.ideal_bits > 0 else None,
            "escapes": self.escapes,
        }


class NTC(Codec):
    """Nonlinear transform coding; rates in bits per realization, one stream per evaluation set.

    Settings: steps (training on the quantization proxy), finetune_steps (synthesis on true
    rounding), density_steps (full-batch fit of the density to the rounded latents),
    batch_size, lr (Adam), n_train (training realizations), n_val (held-out training-split
    realizations for the lambda and gain calibrations; from a dataset, distinct from the
    training images, see :func:`held_out`), latent / hidden (see
    :func:`.transforms.build_transforms`), quantization (``noise``: rate and synthesis on
    additive uniform noise; ``mixed``: synthesis on straight-through rounding instead),
    calibration_rounds, warm_fraction (main steps of each warm-started fit along a curve, as
    a fraction of ``steps``; None: the source kind's, see
    :data:`~rdbench_plugins.budgets.NTC_BUDGETS` and :meth:`fit_curve`), tail_mass
    (probability outside each coding table's support, coded by escape), max_support
    (integers per table), precision (bits of the quantized tables), train_dtype (``float32``,
    or ``bfloat16`` for the conv layers of a training step, see
    :mod:`rdbench_plugins._precision`; None: by image size, see
    :data:`~rdbench_plugins.budgets.TRAIN_DTYPES`), device (torch device for training). The
    three step counts left at None take the budget of the source's kind
    (:data:`rdbench_plugins.budgets.NTC_BUDGETS`; the runner fills them in at plan time).
    """

    coding = "stream"

    def __init__(
        self,
        steps: int | None = None,
        finetune_steps: int | None = None,
        density_steps: int | None = None,
        batch_size: int = 256,
        lr: float = 2e-3,
        n_train: int = 50_000,
        n_val: int = 10_000,
        latent: int | None = None,
        hidden: int | None = None,
        quantization: str = "noise",
        calibration_rounds: int = 3,
        warm_fraction: float | None = None,
        tail_mass: float = 1e-6,
        max_support: int = 4095,
        precision: int = 16,
        train_dtype: str | None = None,
        device: str = "cpu",
    ) -> None:
        if not max_support < 2 ** (precision - 1):
            raise ValueError(f"max_support must lie in 1..2**(precision - 1), got {max_support!r}")
        self.steps = {"steps": steps, "finetune_steps": finetune_steps, "density_steps": density_steps}
        self.settings = dict(
            batch_size=int(batch_size),
            lr=float(lr),
            quantization=quantization,
            calibration_rounds=int(calibration_rounds),
        )
        self.n_train, self.n_val = int(n_train), int(n_val)
        self.warm_fraction = None if warm_fraction is None else float(warm_fraction)
        self.latent, self.hidden = latent, hidden
        self.tail_mass, self.max_support, self.precision = float(tail_mass), int(max_support), int(precision)
        self.train_dtype = train_dtype
        self.device = torch.device(device)
        self.model: NTCModel | None = None
        self.models: list[IntegerModel] = []
        self.log: TrainingLog | None = None
        self.warm_start = False
        self.target_distortion: float | None = None
        self.validation_distortion: float | None = None
        self.stats: StreamStats | None = None

    # -- training -------------------------------------------------------------------------

    def fit(self, source: Source, target: Target, seed: int) -> None:
        """Train on ``n_train`` realizations of the train split for ``target`` (resolved)."""
        distortion, train_x, val_x = self._split(source, seed)
        self._fit_fresh(
            source, target, seed, distortion, train_x, val_x, target_slope(source, target, val_x.cpu().numpy())
        )

    def fit_curve(self, source: Source, targets: Sequence[Target], seed: int) -> Iterator[Target]:
        """Fit each target (resolved) from the highest rate down, yielding it once fitted.

        Targets are taken by decreasing slope |dR/dD| (:func:`rdbench.slopes.target_slope`).
        The first is fitted as by :meth:`fit`. Each later one starts from a copy of the
        previous target's model (transforms and density), at lambda = the previous final
        lambda times slope(target) / slope(previous) (bits per unit distortion; a ``slope=``
        target keeps its own), trains ``warm_fraction`` of ``steps`` main steps, calibrating
        lambda as :func:`.training.train` does, then fine-tunes and fits the density as usual.
        """
        distortion, train_x, val_x = self._split(source, seed)
        samples = val_x.cpu().numpy()
        slopes = [target_slope(source, target, samples) for target in targets]
        previous: tuple[Slope, TrainingLog] | None = None
        for i in steepest_first(slopes):
            target, slope = targets[i], slopes[i]
            if previous is None:
                log = self._fit_fresh(source, target, seed, distortion, train_x, val_x, slope)
            else:
                before, before_log = previous
                lam, rule = slope.bits, slope.rule
                if target.distortion is not None and before.bits > 0:
                    lam, rule = (
                        warm_lambda(before_log.lambda_final, before.bits, slope.bits),
                        f"{WARM_RULE} ({slope.rule})",
                    )
                steps = self._budget(source)
                kind = "image" if is_image(tuple(source.shape)) else "vector"
                fraction = self.warm_fraction or NTC_BUDGETS[kind]["warm_fraction"]
                steps["steps"] = max(1, round(fraction * steps["steps"]))
                self.model = copy.deepcopy(self._fitted())
                log = self._train(target, seed, distortion, train_x, val_x, lam, rule, steps, warm_start=True)
            previous = slope, log
            yield target

    def _split(self, source: Source, seed: int) -> tuple[TorchForm, torch.Tensor, torch.Tensor]:
        """(distortion, training realizations, validation realizations) as torch tensors."""
        source.distortion.require_differentiable("NTC")
        train, val = (
            torch.as_tensor(np.asarray(a, dtype=np.float32), device=self.device) for a in self._data(source, seed)
        )
        return source.distortion.torch_elementwise, train, val

    def _data(self, source: Source, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(training, validation) realizations of the train split: see :func:`held_out`."""
        return held_out(source, self.n_train, self.n_val, seed)

    def _budget(self, source: Source) -> dict[str, int]:
        """The three step counts, those left at None from the source kind's budget."""
        return with_budget(self.steps, NTC_BUDGETS["image" if is_image(tuple(source.shape)) else "vector"])

    def _fit_fresh(
        self,
        source: Source,
        target: Target,
        seed: int,
        distortion: TorchForm,
        train_x: torch.Tensor,
        val_x: torch.Tensor,
        slope: Slope,
    ) -> TrainingLog:
        """A new model, its step from :func:`.training.initial_step`, trained for ``target``."""
        step = initial_step(val_x, source.distortion, target.distortion, slope.bits)
        self.model = seeded(seed, lambda: NTCModel(tuple(source.shape), self.latent, self.hidden, step))
        use_train_dtype(self.model, self.train_dtype, source.shape).to(self.device)
        return self._train(
            target, seed, distortion, train_x, val_x, slope.bits, slope.rule, self._budget(source), warm_start=False
        )

    def _train(
        self,
        target: Target,
        seed: int,
        distortion: TorchForm,
        train_x: torch.Tensor,
        val_x: torch.Tensor,
        lam: float,
        rule: str,
        steps: dict[str, int],
        *,
        warm_start: bool,
    ) -> TrainingLog:
        """Train ``self.model`` from lambda ``lam`` (bits per unit distortion), then build the coding tables."""
        model = self._fitted()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.target_distortion = target.distortion
        self.warm_start = warm_start
        self.log = train(
            model,
            train_x,
            val_x,
            distortion,
            lam,
            rule,
            target.distortion,
            generator=generator,
            start_factor=1.0 if warm_start else START_FACTOR,
            **steps,
            **self.settings,
        )
        model.eval()
        self.models = model.density.coding_models(self.tail_mass, self.max_support, self.precision)
        self.validation_distortion = float(distortion(val_x, model.synthesize(model.quantize(val_x))).mean())
        return self.log

    def _fitted(self) -> NTCModel:
        if self.model is None:
            raise RuntimeError("NTC: call fit before encode or decode")
        return self.model

    # -- coding ---------------------------------------------------------------------------

    def quantize(self, x: np.ndarray) -> torch.Tensor:
        """(n, *shape) realizations -> (n, *latent_shape) int64 latents (on the CPU)."""
        model = self._fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != model.shape:
            raise ValueError(f"NTC was fitted on realizations of shape {model.shape}, got a batch of shape {x.shape}")
        return model.quantize(torch.as_tensor(x, device=self.device)).cpu()

    def synthesize(self, symbols: torch.Tensor) -> np.ndarray:
        """(n, *latent_shape) integer latents -> (n, *shape) float64 reconstructions."""
        return self._fitted().synthesize(symbols.to(self.device)).cpu().double().numpy()

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """What decode(encode(x)) returns, without entropy coding: (n, *shape) float64."""
        return self.synthesize(self.quantize(x))

    def encode(self, x: np.ndarray) -> bytes:
        """All n realizations (n, *shape) as one range-coded message."""
        model = self._fitted()
        symbols = self.quantize(x)
        flat = symbols.reshape(symbols.shape[0], model.model_index.size).numpy()
        message = encode_symbols(flat, self.models, model.model_index)
        low = np.array([m.offset for m in self.models])[model.model_index]
        size = np.array([m.size for m in self.models])[model.model_index]
        self.stats = StreamStats(
            realizations=flat.shape[0],
            real_bits=Bits.length(message),
            ideal_bits=model.density.ideal_bits(model.channels_first(symbols).numpy()),
            escapes=int(((flat < low) | (flat >= low + size)).sum()),
        )
        return message

    def decode(self, message: bytes | Bits) -> np.ndarray:
        """The (n, *shape) reconstructions of a message from :meth:`encode`; ValueError if corrupted."""
        model = self._fitted()
        flat = decode_symbols(message, self.models, model.model_index)
        return self.synthesize(torch.as_tensor(flat).reshape(flat.shape[0], *model.latent_shape))

    def details(self) -> dict[str, Any]:
        """Lambda, training time and steps (whether warm-started along a curve), and the last
        message's real and ideal bits per realization."""
        log = self.log
        out: dict[str, Any] = {}
        if log is not None:
            out.update(
                {
                    "slope_bits": log.lambda_final,
                    "slope_initial_bits": log.lambda_initial,
                    "slope_rule": log.lambda_rule,
                    "calibration": [list(point) for point in log.calibration],
                    "gain": log.gain,
                    "target_distortion": self.target_distortion,
                    "validation_distortion": self.validation_distortion,
                    "train_seconds": log.seconds,
                    "train_cpu_seconds": log.cpu_seconds,
                    "steps": log.steps,
                    "main_steps": log.main_steps,
                    "warm_start": self.warm_start,
                    "latent_shape": list(self._fitted().latent_shape),
                    "largest_table": max(m.size for m in self.models),
                }
            )
        if self.stats is not None:
            out.update(self.stats.details())
        return out
