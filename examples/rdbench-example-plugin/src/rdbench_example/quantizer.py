"""``example-usq``: a uniform scalar quantizer per component with a real range-coded stream.

fit: the step from the target (a distortion target: the step at which the training samples'
distortion meets it, found by bisection from the high-rate step whose distortion
(step/2)^p / (p + 1) per component does; a slope target: the step of that high-rate slope,
:meth:`rdbench.distortion.Distortion.quantizer_step`), then one integer model per
component, fitted to the training samples' quantization indices (add-one smoothing, the
rest of the integers by escape). encode: round(x / step) for every realization, range-coded
as one message (:func:`rdbench.entropy_coding.encode_symbols`). decode: the indices times
the step. Rates are the message's length, bits per realization.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from rdbench import Bits, Codec, Source
from rdbench.distortion import flatten
from rdbench.entropy_coding import IntegerModel, decode_symbols, encode_symbols
from rdbench.slopes import target_slope
from rdbench.targets import Target

#: Probability left to the escape (integers outside the training range).
ESCAPE = 1e-6


class UniformQuantizer(Codec):
    """step * round(x / step) per component; one range-coded stream per evaluation set."""

    coding = "stream"

    def __init__(self, n_train: int = 20_000, precision: int = 16) -> None:
        self.n_train, self.precision = n_train, precision
        self.step: float | None = None
        self.models: list[IntegerModel] = []
        self.shape: tuple[int, ...] = ()

    def fit(self, source: Source, target: Target, seed: int) -> None:
        measure, self.shape = source.distortion, tuple(source.shape)
        components = max(1, int(np.prod(self.shape)))
        if target.distortion is None:
            self.step = measure.quantizer_step(target_slope(source, target).bits)
        else:
            p = measure.exponent
            if p is None:
                raise ValueError(f"example-usq needs a distortion sum_i |x_i - y_i|^p, not {measure.name!r}")
            self.step = 2 * ((p + 1) * float(target.distortion) / components) ** (1 / p)
        train = source.sample(self.n_train, seed, "train")
        if target.distortion is not None:
            self.step = self._calibrated(train, measure, float(target.distortion), self.step)
        indices = self._indices(train)
        self.models = []
        for column in indices.T:
            low, high = int(column.min()), int(column.max())
            counts = np.bincount(column - low, minlength=high - low + 1) + 1.0
            self.models.append(
                IntegerModel.from_probabilities(counts / counts.sum(), low, ESCAPE, precision=self.precision)
            )

    def _calibrated(self, train: np.ndarray, measure, target: float, step: float) -> float:
        """The step in [step / 8, 8 step] where the mean distortion on ``train`` is ``target``
        (bisection in log step), or ``step`` when that range does not bracket it."""

        def excess(log_step: float) -> float:
            self.step = float(np.exp(log_step))
            return float(measure(train, (self._indices(train) * self.step).reshape(train.shape)).mean()) - target

        low, high = np.log(step / 8), np.log(step * 8)
        if excess(low) > 0 or excess(high) < 0:
            return step
        return float(np.exp(brentq(excess, low, high, xtol=1e-6)))

    def encode(self, x: np.ndarray) -> bytes:
        return encode_symbols(self._indices(x), self._fitted())

    def decode(self, message: Bits | bytes) -> np.ndarray:
        indices = decode_symbols(message, self._fitted())
        return (indices * self.step).reshape(len(indices), *self.shape)

    def _indices(self, x: np.ndarray) -> np.ndarray:
        return np.round(flatten(np.asarray(x, dtype=np.float64)) / self.step).astype(np.int64)

    def _fitted(self) -> list[IntegerModel]:
        if not self.models:
            raise RuntimeError("example-usq: call fit before encode or decode")
        return self.models

    def details(self) -> dict[str, float | None]:
        return {"step": self.step}
