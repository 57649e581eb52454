"""The ``ntc`` codec: nonlinear transform coding (Ballé et al. 2021) with a real bitstream.

fit: train the transforms and the factorized density on rate + lambda * distortion (see
:mod:`.training` for how the target sets lambda), then build one quantized integer model
per latent channel. encode: round the latents and range-code the whole evaluation set as
one message (``stream`` coding) with :mod:`rdbench.entropy_coding`. decode: range-decode
and synthesize. The reconstruction decode returns is bit for bit the one :meth:`NTC.reconstruct`
computes on the encoder's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rdbench.entropy_coding import IntegerModel, decode_symbols, encode_symbols
from rdbench.interfaces import Bits, Codec, Source
from rdbench.slopes import target_slope
from rdbench.targets import Target
from rdbench_plugins._torch_common import seeded, torch_distortion
from rdbench_plugins.budgets import NTC_BUDGETS, is_image, with_budget
from rdbench_plugins.ntc.model import QUANTIZATIONS, NTCModel
from rdbench_plugins.ntc.training import TrainingLog, initial_step, train


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


#: Training steps by source kind where the settings leave them at None. Images get about a
#: quarter of the vector steps: with the vector budget one ``digits`` cell took 160 s (ntc) and
#: 400 s (block-ntc) on one CPU thread, with this one 27 s and 73 s (measured, default profile).
class NTC(Codec):
    """Nonlinear transform coding; rates in bits per realization, one stream per evaluation set.

    Settings: steps (training on the quantization proxy), finetune_steps (synthesis on true
    rounding), density_steps (full-batch fit of the density to the rounded latents), batch_size, lr (Adam), n_train (training realizations), n_val
    (held-out training-split realizations for lambda calibration), latent / hidden (see
    :func:`.transforms.build_transforms`), quantization (``noise``: rate and synthesis on
    additive uniform noise; ``mixed``: synthesis on straight-through rounding instead),
    calibration_rounds, tail_mass (probability outside each coding table's support, coded
    by escape), max_support (integers per table), precision (bits of the quantized tables),
    device (torch device for training). The three step counts left at None take the budget of
    the source's kind (:data:`rdbench_plugins.budgets.NTC_BUDGETS`; the runner fills them in at plan time).
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
        tail_mass: float = 1e-6,
        max_support: int = 4095,
        precision: int = 16,
        device: str = "cpu",
    ) -> None:
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
        if not 0 < tail_mass < 0.5:
            raise ValueError(f"tail_mass must lie in (0, 0.5), got {tail_mass!r}")
        if not 1 <= max_support < 2 ** (precision - 1):
            raise ValueError(f"max_support must lie in 1..2**(precision - 1), got {max_support!r}")
        positive = {"steps": 1 if steps is None else steps, "batch_size": batch_size, "n_train": n_train, "n_val": n_val}
        for name, value in positive.items():
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        self.steps = {"steps": steps, "finetune_steps": finetune_steps, "density_steps": density_steps}
        self.settings = dict(
            batch_size=int(batch_size), lr=float(lr), quantization=quantization,
            calibration_rounds=int(calibration_rounds),
        )
        self.n_train, self.n_val = int(n_train), int(n_val)
        self.latent, self.hidden = latent, hidden
        self.tail_mass, self.max_support, self.precision = float(tail_mass), int(max_support), int(precision)
        self.device = torch.device(device)
        self.model: NTCModel | None = None
        self.models: list[IntegerModel] = []
        self.log: TrainingLog | None = None
        self.target_distortion: float | None = None
        self.validation_distortion: float | None = None
        self.stats: StreamStats | None = None

    # -- training -------------------------------------------------------------------------

    def fit(self, source: Source, target: Target, seed: int) -> None:
        """Train on ``n_train`` realizations of the train split for ``target`` (resolved)."""
        distortion = torch_distortion(source.distortion.name, "NTC")
        data = source.sample(self.n_train + self.n_val, seed, "train")
        x = torch.as_tensor(np.asarray(data, dtype=np.float32), device=self.device)
        train_x, val_x = x[: self.n_train], x[self.n_train :]
        slope = target_slope(source, target, val_x.cpu().numpy())
        lam, rule = slope.bits, slope.rule
        step = initial_step(val_x, distortion, target.distortion, lam, source.distortion.name)
        self.model = seeded(seed, lambda: NTCModel(tuple(source.shape), self.latent, self.hidden, step))
        self.model.to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.target_distortion = target.distortion
        steps = with_budget(self.steps, NTC_BUDGETS["image" if is_image(tuple(source.shape)) else "vector"])
        self.log = train(
            self.model, train_x, val_x, distortion, lam, rule, target.distortion, generator=generator,
            **steps, **self.settings,
        )
        self.model.eval()
        self.models = self.model.density.coding_models(self.tail_mass, self.max_support, self.precision)
        self.validation_distortion = float(distortion(val_x, self.model.synthesize(self.model.quantize(val_x))).mean())

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
        """Lambda, training time and steps, and the last message's real and ideal bits per realization."""
        log = self.log
        out: dict[str, Any] = {}
        if log is not None:
            out.update(
                {
                    "lambda": log.lambda_final,
                    "lambda_initial": log.lambda_initial,
                    "lambda_rule": log.lambda_rule,
                    "calibration": [list(point) for point in log.calibration],
                    "target_distortion": self.target_distortion,
                    "validation_distortion": self.validation_distortion,
                    "train_seconds": log.seconds,
                    "train_cpu_seconds": log.cpu_seconds,
                    "steps": log.steps,
                    "latent_shape": list(self._fitted().latent_shape),
                    "largest_table": max(m.size for m in self.models),
                }
            )
        if self.stats is not None:
            out.update(self.stats.details())
        return out

