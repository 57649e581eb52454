"""Deconvolution sources X = U + N, N ~ N(0, sigma^2 I_d), U not Gaussian: exact R(D) at low distortion.

Shapes: one realization is (d,); ``sample`` returns (n, d) float64. Rates are in bits per
realization, distortions are ||x - y||^2 per realization (summed over the d components).

For squared error the Shannon lower bound R(D) >= h(X) - (d/2) log(2 pi e D / d) is met
exactly when X can be written as Y + Z with Z ~ N(0, (D/d) I) independent of Y. Here
X = (U + N(0, (sigma^2 - D/d) I)) + N(0, (D/d) I), so for D <= d sigma^2

    R(D) = h(X) - (d/2) log2(2 pi e D / d)  bits,

with the optimal reproduction law(U) * N(0, (sigma^2 - D/d) I) (Yang, Eckstein, Nutz and
Mandt 2023, the known-solution class of their WGD paper). Above d sigma^2 no closed form is
known: :meth:`DeconvolutionSource.rate_distortion` returns None there (and 0 from D_max on).
The differential entropy h(X) is computed numerically, each subclass stating its method and
error (:attr:`DeconvolutionSource.entropy_error_bits`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np
from scipy import integrate, special

from rdbench import Source, SquaredError
from rdbench.interfaces import Split
from rdbench.units import LOG2E


class DeconvolutionSource(Source):
    """U + N(0, sigma^2 I_d) for a law of U given by the subclass (its samples and h(X))."""

    distortion = SquaredError()

    def __init__(self, dimension: int, noise_variance: float) -> None:
        d = operator.index(dimension)
        if d < 1:
            raise ValueError(f"dimension must be >= 1, got {dimension!r}")
        s2 = float(noise_variance)
        if not (math.isfinite(s2) and s2 > 0):
            raise ValueError(f"noise_variance must be finite and > 0, got {noise_variance!r}")
        self.shape = (d,)
        self.noise_variance = s2

    # -- what a subclass provides ----------------------------------------------------------

    def sample_u(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n draws of U, (n, d) float64."""
        raise NotImplementedError

    @property
    def u_spread(self) -> float:
        """E||U - E U||^2, the part of D_max that U contributes."""
        raise NotImplementedError

    #: h(X) in bits and an upper bound on its numerical error (set by the subclass).
    entropy_bits: float
    entropy_error_bits: float

    # -- the source ------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        return self.shape[0]

    @property
    def exact_limit(self) -> float:
        """d sigma^2: R(D) is exact for D up to here (summed squared error)."""
        return self.dimension * self.noise_variance

    @property
    def d_max(self) -> float:
        """tr Cov(X) = E||U - E U||^2 + d sigma^2, the distortion of reproducing every x by E X."""
        return self.u_spread + self.exact_limit

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        rng = self.rng(seed, split)
        n = operator.index(n)
        u = self.sample_u(rng, n)
        return u + rng.standard_normal((n, self.dimension)) * math.sqrt(self.noise_variance)

    def _slb(self, distortion: float) -> float:
        d = self.dimension
        return self.entropy_bits - 0.5 * d * math.log2(2 * math.pi * math.e * distortion / d)

    def rate_distortion(self, distortion: float) -> float | None:
        """R(D) in bits per realization: the tight Shannon lower bound for 0 < D <= d sigma^2,
        0 for D >= D_max, None in between (no closed form)."""
        dist = float(distortion)
        if not dist > 0:
            raise ValueError(f"distortion must be > 0 (R(D) is infinite at D = 0), got {distortion!r}")
        if dist >= self.d_max:
            return 0.0
        return self._slb(dist) if dist <= self.exact_limit else None

    def slope(self, distortion: float) -> float | None:
        """|dR/dD| = d log2(e) / (2 D) bits per unit distortion where R(D) is exact, else None."""
        dist = float(distortion)
        return 0.5 * self.dimension * LOG2E / dist if 0 < dist <= self.exact_limit else None

    @property
    def exact_rate_bits(self) -> float:
        """R(d sigma^2) = h(X) - h(N) = I(U; X): the lowest rate with an exact R(D)."""
        return self._slb(self.exact_limit)

    def distortion_at_rate(self, rate_bits: float) -> float | None:
        """D(R) = (d / (2 pi e)) 2^(2 (h(X) - R) / d) for R >= :attr:`exact_rate_bits`; D_max
        for R <= 0; None in between."""
        r = float(rate_bits)
        if math.isnan(r):
            raise ValueError("rate must be a number, got nan")
        if r <= 0:
            return self.d_max
        if r < self.exact_rate_bits:
            return None
        d = self.dimension
        return d / (2 * math.pi * math.e) * 2.0 ** (2 * (self.entropy_bits - r) / d)


class SphereDeconvolution(DeconvolutionSource):
    """U uniform on the sphere of ``radius`` in R^d (the WGD paper's source), plus N(0, sigma^2 I_d).

    h(X) by a 1-d radial integral: p(x) depends on r = ||x|| only,
    p(r) = (2 pi s2)^(-d/2) exp(-(r^2 + a^2) / (2 s2)) A(a r / s2) with
    A(k) = E_u exp(k u_1) = Gamma(d/2) (k/2)^(1 - d/2) I_(d/2 - 1)(k) (``scipy.special.ive``
    keeps it finite), and h(X) = -int_0^inf S_(d-1) r^(d-1) p(r) ln p(r) dr, S_(d-1) the area
    of the unit sphere, by adaptive Gauss-Kronrod quadrature (``scipy.integrate.quad``) over
    r in [0, a + s (sqrt(d) + 15)]. The stated error is quad's error estimate plus the
    deviation of the integrated density from 1 times max |ln p| (both about 1e-10 bits).
    """

    def __init__(self, dimension: int = 2, noise_variance: float = 0.1, radius: float = 1.0) -> None:
        super().__init__(dimension, noise_variance)
        a = float(radius)
        if not (math.isfinite(a) and a > 0):
            raise ValueError(f"radius must be finite and > 0, got {radius!r}")
        self.radius = a
        self.entropy_bits, self.entropy_error_bits = self._entropy()

    def __repr__(self) -> str:
        return (
            f"SphereDeconvolution(d={self.dimension}, noise_variance={self.noise_variance!r}, radius={self.radius!r})"
        )

    def sample_u(self, rng: np.random.Generator, n: int) -> np.ndarray:
        g = rng.standard_normal((n, self.dimension))
        return self.radius * g / np.linalg.norm(g, axis=1, keepdims=True)

    @property
    def u_spread(self) -> float:
        return self.radius**2

    def log_density(self, r: np.ndarray) -> np.ndarray:
        """ln p(x) at ||x|| = r (any shape), nats."""
        d, s2, a = self.dimension, self.noise_variance, self.radius
        nu = 0.5 * d - 1.0
        k = np.maximum(a * np.asarray(r, dtype=np.float64) / s2, 1e-8)  # A(k) -> 1 as k -> 0
        log_a = special.gammaln(0.5 * d) - nu * np.log(0.5 * k) + np.log(special.ive(nu, k)) + k
        return -0.5 * d * math.log(2 * math.pi * s2) - (np.square(r) + a * a) / (2 * s2) + log_a

    def _entropy(self) -> tuple[float, float]:
        d, s = self.dimension, math.sqrt(self.noise_variance)
        log_area = math.log(2.0) + 0.5 * d * math.log(math.pi) - special.gammaln(0.5 * d)
        top = self.radius + s * (math.sqrt(d) + 15.0)

        def density(r: float) -> float:
            return math.exp(log_area + (d - 1) * math.log(r) + float(self.log_density(r))) if r > 0 else 0.0

        def integrand(r: float) -> float:
            return -density(r) * float(self.log_density(r)) if r > 0 else 0.0

        options = {"points": [self.radius], "limit": 400, "epsabs": 1e-13, "epsrel": 1e-12}
        h, h_err = integrate.quad(integrand, 0.0, top, **options)
        mass, _ = integrate.quad(density, 0.0, top, **options)
        worst = float(np.max(np.abs(self.log_density(np.linspace(0.0, top, 257)))))
        return h * LOG2E, (h_err + abs(mass - 1.0) * worst) * LOG2E


class MixtureDeconvolution(DeconvolutionSource):
    """U uniform on a few fixed ``points`` in R^d (d <= 3), plus N(0, sigma^2 I_d).

    h(X) = -(1/K) sum_k E_Z ln p(u_k + sigma Z) by a tensor Gauss-Hermite rule in d
    dimensions per component (``scipy.special.roots_hermite``; ln p is smooth, so the rule
    converges fast). The stated error is the difference between rules of
    :data:`GAUSS_HERMITE_NODES` and 3/4 as many nodes per dimension.
    """

    #: Gauss-Hermite nodes per dimension.
    GAUSS_HERMITE_NODES = 64
    #: The largest d the tensor rule is used in (GAUSS_HERMITE_NODES^d nodes per component).
    MAX_DIMENSION = 3

    def __init__(
        self,
        points: Sequence[Sequence[float]] = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)),
        noise_variance: float = 0.1,
    ) -> None:
        u = np.array(points, dtype=np.float64)
        if u.ndim != 2 or u.shape[0] < 1 or not np.all(np.isfinite(u)):
            raise ValueError(f"points must be a non-empty list of equal-length lists of numbers, got {points!r}")
        if u.shape[1] > self.MAX_DIMENSION:
            raise ValueError(f"points may have at most {self.MAX_DIMENSION} coordinates (h(X) by a tensor rule)")
        super().__init__(u.shape[1], noise_variance)
        self.points = u
        h_fine = self._entropy_nats(self.GAUSS_HERMITE_NODES)
        h_coarse = self._entropy_nats(3 * self.GAUSS_HERMITE_NODES // 4)
        self.entropy_bits, self.entropy_error_bits = h_fine * LOG2E, abs(h_fine - h_coarse) * LOG2E

    def __repr__(self) -> str:
        return f"MixtureDeconvolution(points={self.points.tolist()}, noise_variance={self.noise_variance!r})"

    def sample_u(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.points[rng.integers(len(self.points), size=n)]

    @property
    def u_spread(self) -> float:
        return float(np.square(self.points - self.points.mean(0)).sum(1).mean())

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """ln p(x) for x (n, d), nats, (n,)."""
        s2, d = self.noise_variance, self.dimension
        sq = np.square(np.asarray(x, dtype=np.float64)[:, None, :] - self.points[None]).sum(-1)
        return (
            special.logsumexp(-sq / (2 * s2), axis=1)
            - math.log(len(self.points))
            - 0.5 * d * math.log(2 * math.pi * s2)
        )

    def _entropy_nats(self, nodes: int) -> float:
        t, w = special.roots_hermite(nodes)  # int e^(-t^2) f(t) dt; Z = sqrt(2) t
        grid = np.stack(np.meshgrid(*[t] * self.dimension, indexing="ij"), -1).reshape(-1, self.dimension)
        weights = np.prod(
            np.stack(np.meshgrid(*[w] * self.dimension, indexing="ij"), -1).reshape(-1, self.dimension), 1
        )
        weights /= math.pi ** (0.5 * self.dimension)
        offsets = math.sqrt(2 * self.noise_variance) * grid
        return -float(np.mean([weights @ self.log_density(u + offsets) for u in self.points]))
