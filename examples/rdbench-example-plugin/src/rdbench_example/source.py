"""``example-uniform``: X uniform on [0, 1]^m, squared error summed over the components."""

from __future__ import annotations

import numpy as np

from rdbench import Source, SquaredError
from rdbench.interfaces import Split


class UniformCube(Source):
    """i.i.d. realizations of shape (m,), uniform on the unit cube; float64 samples (n, m).

    R(D) has no closed form; D_max = m / 12 (every realization reproduced by the centre).
    ``differential_entropy_bits`` = 0 is h(X), for tests of entropy estimators.
    """

    distortion = SquaredError()
    differential_entropy_bits = 0.0

    def __init__(self, dimensions: int = 2) -> None:
        self.shape = (int(dimensions),)

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        return self.rng(seed, split).random((int(n), self.shape[0]))

    @property
    def d_max(self) -> float:
        return self.shape[0] / 12.0
