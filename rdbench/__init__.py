"""rdbench: how close is a compressor to the rate-distortion limit of real data?

Rates are in **bits per source realization**; distortions are per realization, as the
source's distortion measure defines them (squared error summed over the realization for
vector sources).
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

__all__ = [
    "AbsoluteError",
    "Bits",
    "Codec",
    "CodecRecord",
    "Distortion",
    "Estimator",
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
