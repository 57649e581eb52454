"""rdbench: how close is a compressor to the rate-distortion limit of real data?

Rates are in **bits per source realization**; distortions are per realization, as the
source's distortion measure defines them (squared error summed over the realization for
vector sources).

Plugins may import the modules in :data:`PUBLIC_MODULES` (the README's "Write a plugin"
section says what each holds); the rest (runner, store, executors, leaderboard, command
line, ...) is the framework's own and may change without notice.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rdbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from rdbench.distortion import AbsoluteError, Distortion, Hamming, SquaredError
from rdbench.hookspecs import hookimpl
from rdbench.interfaces import Bits, Codec, Estimator, GaussianLaw, RDPoint, Source
from rdbench.records import CodecRecord, EstimatorRecord, SourceRecord

#: The modules plugin authors may import (``rdbench.testing`` in their tests); the built-in
#: plugins import nothing else.
PUBLIC_MODULES: tuple[str, ...] = (
    "rdbench",
    "rdbench.interfaces",
    "rdbench.records",
    "rdbench.settings",
    "rdbench.units",
    "rdbench.distortion",
    "rdbench.targets",
    "rdbench.slopes",
    "rdbench.gaussian",
    "rdbench.entropy_coding",
    "rdbench.data",
    "rdbench.cells",
    "rdbench.evaluation",
    "rdbench.testing",
)

__all__ = [
    "AbsoluteError",
    "Bits",
    "Codec",
    "CodecRecord",
    "Distortion",
    "Estimator",
    "PUBLIC_MODULES",
    "EstimatorRecord",
    "GaussianLaw",
    "Hamming",
    "RDPoint",
    "Source",
    "SourceRecord",
    "SquaredError",
    "__version__",
    "hookimpl",
]
