"""Training and validation realizations from a source's train split, for the built-in
methods that calibrate on held-out data (``ntc``, ``block-ntc``, ``sandwich-upper``)."""

from __future__ import annotations

import numpy as np

from rdbench.interfaces import Source

#: From a finite train split, at most one realization in HOLDOUT is held out for validation.
HOLDOUT = 5


def held_out(source: Source, n_train: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_train training, n_val validation) realizations of ``source``'s train split.

    Fresh draws where the split has room for both; from a finite split too small for that,
    its distinct realizations once each, the last min(n_val, size // HOLDOUT) held out, so
    that the calibrations (lambda, NTC's gain, the upper bound's noise) see realizations the
    training never did.
    """
    size = source.split_size("train")
    if size is not None and size < n_train + n_val:
        n_val = min(n_val, size // HOLDOUT)
        n_train = size - n_val
    data = source.sample(n_train + n_val, seed, "train")
    return data[:n_train], data[n_train:]
