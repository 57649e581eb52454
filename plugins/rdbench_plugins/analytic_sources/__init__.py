"""Built-in plugin ``analytic-sources``: sources whose R(D) is known in closed form.

Gaussian vectors (reverse water-filling), Bernoulli and M-ary sources with Hamming
distortion, and the Laplace source with absolute error. This module only declares the
records; the sources live in the modules the factories name.
"""

from __future__ import annotations

from rdbench import SourceRecord, hookimpl
from rdbench.settings import number, whole

_MODULE = "rdbench_plugins.analytic_sources"
_GAUSSIAN_TARGETS = {
    "smoke": ("R=1", "R=2"),
    "default": ("R=1", "R=2", "R=4"),
    "paper": ("R=1", "R=2", "R=4", "R=6", "R=8"),
}


@hookimpl
def rdbench_sources() -> list[SourceRecord]:
    return [
        SourceRecord(
            name="gaussian",
            summary="Gaussian vector N(0, V diag(variances) V^T), squared error; exact R(D) by reverse water-filling",
            factory=f"{_MODULE}.gaussian:GaussianSource",
            defaults={"variances": [1.0, 1.0], "rotate": False, "rotation_seed": 0},
            checks={"rotation_seed": whole(minimum=0)},
            targets=_GAUSSIAN_TARGETS,
            distortions=("squared_error",),
            features=("gaussian",),
        ),
        SourceRecord(
            name="gaussian-m20",
            summary="Gaussian m=20, sigma_k^2 = 4exp(-k/16), rotated (paper Fig. 2), squared error",
            factory=f"{_MODULE}.gaussian:paper_m20",
            defaults={"rotation_seed": 0},
            checks={"rotation_seed": whole(minimum=0)},
            targets=_GAUSSIAN_TARGETS,
            distortions=("squared_error",),
            features=("gaussian",),
        ),
        SourceRecord(
            name="gaussian-m40",
            summary="Gaussian m=40, sigma_k^2 = 4exp(-k/4), diagonal (paper Fig. 15), squared error",
            factory=f"{_MODULE}.gaussian:paper_m40",
            targets=_GAUSSIAN_TARGETS,
            distortions=("squared_error",),
            features=("gaussian",),
        ),
        SourceRecord(
            name="gaussian-rcc",
            summary="Gaussian m=20, sigma_k^2 = 4exp(-k^2/16), diagonal (paper Sec. V-C, RCC), squared error",
            factory=f"{_MODULE}.gaussian:paper_rcc",
            targets=_GAUSSIAN_TARGETS,
            distortions=("squared_error",),
            features=("gaussian",),
        ),
        SourceRecord(
            name="gaussian-published-m20",
            summary="Gaussian m=20, sigma_k^2 = 4exp(-k/2), k=0..19, rotated (paper's published code), squared error",
            factory=f"{_MODULE}.gaussian:published_m20",
            defaults={"rotation_seed": 0},
            checks={"rotation_seed": whole(minimum=0)},
            targets=_GAUSSIAN_TARGETS,
            distortions=("squared_error",),
            features=("gaussian",),
        ),
        SourceRecord(
            name="bernoulli",
            summary="Bernoulli(p) bits, Hamming distortion; R(D) = h(p) - h(D)",
            factory=f"{_MODULE}.discrete:BernoulliSource",
            defaults={"p": 0.2},
            checks={"p": number(above=0, below=1)},
            targets={"smoke": ("R=0.1", "R=0.5"), "default": ("R=0.1", "R=0.3", "R=0.5")},
            distortions=("hamming",),
        ),
        SourceRecord(
            name="mary",
            summary="M-ary symbols with probabilities pmf, Hamming distortion; closed-form R(D) for D <= (M-1) p_min",
            factory=f"{_MODULE}.discrete:MarySource",
            defaults={"pmf": [0.5, 0.3, 0.2]},
            targets={"smoke": ("D=0.05", "D=0.3"), "default": ("D=0.05", "D=0.15", "D=0.3")},
            distortions=("hamming",),
        ),
        SourceRecord(
            name="laplace",
            summary="Laplace(0, scale) scalar, absolute error; R(D) = log2(scale/D)",
            factory=f"{_MODULE}.laplace:LaplaceSource",
            defaults={"scale": 1.0},
            checks={"scale": number(above=0)},
            targets={"smoke": ("R=0.5", "R=2"), "default": ("R=0.5", "R=1", "R=2")},
            distortions=("absolute_error",),
        ),
    ]
