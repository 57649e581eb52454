"""Built-in plugin ``analytic-sources``: sources whose R(D) is known in closed form.

Gaussian vectors (reverse water-filling), Bernoulli and M-ary sources with Hamming
distortion, the Laplace source with absolute error, and deconvolution sources (a
non-Gaussian U plus Gaussian noise, squared error; exact below d sigma^2). This module only declares the
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


#: Sphere deconvolution presets (the WGD paper's, sigma^2 = 0.1): dimension -> targets per
#: profile, rates above the lowest exact one, R(d sigma^2) = I(U; X) (2.22, 3.86 and 4.97 bits).
_SPHERE_TARGETS = {
    2: {"smoke": ("R=3",), "default": ("R=2.5", "R=3", "R=4"), "paper": ("R=2.5", "R=3", "R=4", "R=5", "R=6")},
    5: {"smoke": ("R=4.5",), "default": ("R=4", "R=4.5", "R=5.5"), "paper": ("R=4", "R=5", "R=6", "R=7")},
    10: {"smoke": ("R=5.5",), "default": ("R=5.25", "R=5.75", "R=6.5"), "paper": ("R=5.25", "R=6", "R=7", "R=8")},
}
_DECONVOLUTION_CHECKS = {"noise_variance": number(above=0)}


def _sphere(dimension: int) -> SourceRecord:
    return SourceRecord(
        name=f"deconv-sphere-d{dimension}",
        summary=(
            f"U uniform on the unit sphere in R^{dimension} + N(0, 0.1 I) (WGD paper), squared error; "
            "R(D) = h(X) - (d/2) log2(2 pi e D/d), exact for D <= d sigma^2"
        ),
        factory=f"{_MODULE}.deconvolution:SphereDeconvolution",
        defaults={"dimension": dimension, "noise_variance": 0.1, "radius": 1.0},
        checks={"dimension": whole(minimum=1), "radius": number(above=0), **_DECONVOLUTION_CHECKS},
        targets=_SPHERE_TARGETS[dimension],
        distortions=("squared_error",),
    )


@hookimpl
def rdbench_sources() -> list[SourceRecord]:
    return [
        *(_sphere(d) for d in sorted(_SPHERE_TARGETS)),
        SourceRecord(
            name="deconv-mixture",
            summary=(
                "U uniform on 4 points (+-1, 0), (0, +-1) + N(0, 0.1 I), squared error; "
                "R(D) = h(X) - log2(pi e D), exact for D <= 2 sigma^2"
            ),
            factory=f"{_MODULE}.deconvolution:MixtureDeconvolution",
            defaults={"points": [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], "noise_variance": 0.1},
            checks=_DECONVOLUTION_CHECKS,
            targets={"smoke": ("R=2.5",), "default": ("R=2", "R=2.5", "R=3.5"), "paper": ("R=2", "R=3", "R=4", "R=5")},
            distortions=("squared_error",),
        ),
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
