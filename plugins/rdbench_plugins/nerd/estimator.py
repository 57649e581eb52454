"""The ``nerd`` estimator: NERD (paper Sec. III, Algorithm 1) as an rdbench Estimator.

A point is trained (:mod:`.train`), then read off fresh ``test`` samples (:mod:`.readout`).
Rates are in bits per realization; beta (the paper's beta~ <= 0) is in nats per unit of
distortion, ``slope_bits`` = -beta / ln 2 is |dR/dD| in bits per unit distortion.

The point is an ``estimate``: with exact expectations NERD upper-bounds R(D), but with M
generator samples it can also fall below, and it can never exceed log2 M
(``rate_ceiling_bits``). Each point keeps what a reverse-channel-coding codec needs
(NERD-RCC): the trained generator as the artifact ``generator.pt`` (see :mod:`.storage`,
loaded by :func:`~rdbench_plugins.nerd.storage.load_generator`), its architecture in
``details["generator"]`` and the slope in ``details["slope_bits"]`` (beta = -slope ln 2), so that
Q*_{Y|X=x}(y) is proportional to exp(beta d(x, y)) Q_Y(y).

:meth:`NERD.curve` estimates several targets in one go, from the highest rate down, each
generator warm-started from its neighbour's (a generator for a lower rate is a shrunk
version of one for a higher rate; growing new directions from nothing is what is slow).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rdbench.distortion import flatten
from rdbench.interfaces import Estimator, RDPoint, Source
from rdbench.targets import Target, highest_rate_first
from rdbench.units import to_bits, to_nats
from rdbench_plugins._precision import use_train_dtype
from rdbench_plugins.budgets import NERD_BUDGETS, nerd_kind, with_budget
from rdbench_plugins.nerd.generators import ConvGenerator, FCGenerator, build_generator, generator_config
from rdbench_plugins.nerd.readout import ReadoutSettings, read_out
from rdbench_plugins.nerd.storage import generator_bytes
from rdbench_plugins.nerd.train import Trainer, TrainResult, TrainSettings

#: Share of the source's variance the first generator starts with in the Lagrangian form.
LAGRANGIAN_START_SHARE = 0.5
#: Seed offsets of the independent random streams of one cell.
_TRAIN_STREAM, _READOUT_STREAM = 1, 2


class NERD(Estimator):
    """NERD with a fully connected (vector sources) or DCGAN-style (images) generator.

    device: ``cpu`` or ``cuda[:i]``. n_train: training pool drawn from the ``train`` split.
    latent_dim, hidden, channels: the generator (:func:`.generators.generator_config`).
    lr, warm_lr: Adam's first learning rate, cold and warm-started. window, patience,
    tol_bits, lr_drops, anneal_steps, max_steps, pairs, m_train_max: the training schedule
    and batches (:class:`.train.TrainSettings`); max_steps, m_train_max, pairs, channels, window
    and lr_drops left at None take the budget of the source's kind
    (:data:`rdbench_plugins.budgets.NERD_BUDGETS`; the runner fills them in at plan time).
    train_dtype: ``float32``, or ``bfloat16`` for the conv generator's DCGAN part in a training
    step (:mod:`rdbench_plugins._precision`; validation and read-out stay float32); None: by
    image size (:data:`rdbench_plugins.budgets.TRAIN_DTYPES`).
    n_eval, n_eval_coarse, m_eval_max: the read-out's sample sizes
    (:class:`.readout.ReadoutSettings`).
    """

    def __init__(
        self,
        device: str = "cpu",
        n_train: int = 65536,
        latent_dim: int | None = None,
        hidden: int | None = None,
        channels: int | None = None,
        lr: float = 3e-3,
        warm_lr: float = 1e-3,
        window: int | None = None,
        patience: int = 2,
        tol_bits: float = 0.003,
        lr_drops: int | None = None,
        anneal_steps: int = 150,
        max_steps: int | None = None,
        pairs: int | None = None,
        m_train_max: int | None = None,
        n_eval: int = 4096,
        n_eval_coarse: int = 131072,
        m_eval_max: int = 2**17,
        train_dtype: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"nerd: device {device!r} was requested but CUDA is not available")
        self.n_train = int(n_train)
        self.architecture = {"latent_dim": latent_dim, "hidden": hidden}
        self.train_settings = TrainSettings(
            lr=float(lr),
            patience=int(patience),
            tol_bits=float(tol_bits),
            anneal_steps=int(anneal_steps),
        )
        self.budget = {
            "max_steps": max_steps,
            "m_train_max": m_train_max,
            "pairs": pairs,
            "channels": channels,
            "window": window,
            "lr_drops": lr_drops,
        }
        self.train_dtype = train_dtype
        self.warm_settings = dataclasses.replace(self.train_settings, lr=float(warm_lr))
        self.readout_settings = ReadoutSettings(
            n_fine=int(n_eval),
            n_coarse=int(n_eval_coarse),
            m_max=int(m_eval_max),
            m_min=min(ReadoutSettings.m_min, int(m_eval_max)),
        )

    def estimate(self, source: Source, target: Target, seed: int) -> list[RDPoint]:
        return self.curve(source, [target], seed)[0]

    def curve(self, source: Source, targets: Sequence[Target], seed: int) -> list[list[RDPoint]]:
        """One point per target (in the order given), trained from the highest rate down.

        Targets are resolved here; ``slope`` targets use the Lagrangian form.
        """
        source.distortion.require_differentiable("nerd")
        pairwise = source.distortion.torch_pairwise
        resolved = [t if t.distortion is not None or t.kind == "slope" else t.resolve(source) for t in targets]
        limits = with_budget(self.budget, NERD_BUDGETS[nerd_kind(tuple(source.shape))])
        config = generator_config(source.shape, **self.architecture, channels=limits["channels"])
        budget = {
            "max_steps": limits["max_steps"],
            "m_max": limits["m_train_max"],
            "pairs": limits["pairs"],
            "window": limits["window"],
            "lr_drops": limits["lr_drops"],
        }
        train_settings = dataclasses.replace(self.train_settings, **budget)
        warm_settings = dataclasses.replace(self.warm_settings, **budget)
        pool = self._samples(source, self.n_train, seed, "train")
        rng = torch.Generator().manual_seed(_stream(seed, _TRAIN_STREAM))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = build_generator(config).to(self.device)
        use_train_dtype(generator, self.train_dtype, source.shape)
        n_eval = self.readout_settings.n_fine + self.readout_settings.n_coarse
        x_eval = self._samples(source, n_eval, seed, "test")
        order = highest_rate_first(resolved)
        points: dict[int, RDPoint] = {}
        previous: RDPoint | None = None
        d_max = float(pairwise(pool.double(), pool.double().mean(0, keepdim=True)).mean())
        for i in order:
            target = resolved[i]
            if previous is None:
                _init_affine(generator, pool, _variance_share(target, d_max))
            elif isinstance(generator, FCGenerator) and target.distortion is not None:
                _shrink(generator, config["latent_dim"], target.distortion, previous.distortion, d_max, rng)
            settings = train_settings if previous is None else warm_settings
            trainer = Trainer(generator, config["latent_dim"], pool, pairwise, settings, rng)
            guess = _rate_guess(target, previous)
            if target.kind == "slope":
                start = None if previous is None else _beta(previous)
                result = trainer.run(beta=-to_nats(target.value), start=start, rate_guess_bits=guess)
            else:
                start, warm = (None, None) if previous is None else (previous.distortion, _beta(previous))
                result = trainer.run(distortion=target.distortion, start=start, beta0=warm, rate_guess_bits=guess)
            previous = points[i] = self._read_out(
                generator, config, target, result, x_eval, pairwise, seed, warm_start=len(points) > 0
            )
        return [[points[i]] for i in range(len(resolved))]

    def _samples(self, source: Source, n: int, seed: int, split: str) -> torch.Tensor:
        x = flatten(np.asarray(source.sample(n, seed, split), dtype=np.float32))
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def _read_out(
        self,
        generator: torch.nn.Module,
        config: dict[str, Any],
        target: Target,
        result: TrainResult,
        x_eval: torch.Tensor,
        pairwise: Any,
        seed: int,
        warm_start: bool,
    ) -> RDPoint:
        t0 = time.perf_counter()
        settings = self.readout_settings
        m, m_coarse = settings.sizes(result.rate_bits)
        rng = torch.Generator().manual_seed(_stream(seed, _READOUT_STREAM))
        z = torch.randn(m, config["latent_dim"], generator=rng).to(self.device)
        generator.eval()
        readout = read_out(
            generator.for_sampling(),
            z,
            x_eval[: settings.n_fine],
            x_eval[settings.n_fine :],
            pairwise,
            m_coarse,
            beta=result.beta,
            distortion=target.distortion,
            settings=settings,
        )
        generator.train()
        details = {
            "form": "slope" if target.distortion is None else "distortion",
            "slope_bits": to_bits(-readout.beta),
            "generator": config,
            "rate_stderr_bits": readout.rate_stderr_bits,
            "converged": bool(result.converged and readout.converged),
            "steps": result.steps,
            "train_seconds": result.seconds,
            "readout_seconds": time.perf_counter() - t0,
            "lr_final": result.lr,
            "train_batch": list(result.batch),
            "slope_train_bits": to_bits(-result.beta),
            "rate_train_bits": result.rate_bits,
            "m": readout.m,
            "m_coarse": readout.m_coarse,
            "n_eval": settings.n_fine,
            "n_eval_coarse": settings.n_coarse,
            "readout_passes": readout.iterations,
            "warm_start": warm_start,
            "device": str(self.device),
        }
        return RDPoint(
            rate_bits=max(readout.rate_bits, 0.0),
            distortion=readout.distortion,
            bound="estimate",
            rate_ceiling_bits=math.log2(readout.m),
            details=details,
            artifacts={"generator.pt": generator_bytes(generator, config, readout.beta)},
        )


def _stream(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0])


def _beta(point: RDPoint) -> float:
    """NERD's beta <= 0 (nats per unit distortion) of a point it computed."""
    return -to_nats(point.details["slope_bits"])


def _rate_guess(target: Target, previous: RDPoint | None) -> float:
    """The rate (bits) to size the first training batches for."""
    if target.kind == "rate":
        return target.value
    return 0.0 if previous is None else previous.rate_bits


def _variance_share(target: Target, d_max: float) -> float:
    """The share of the source's variance an isotropic Gaussian's Q_Y keeps at the target.

    1 - D*/D_max for a distortion target; :data:`LAGRANGIAN_START_SHARE` for a slope.
    """
    if target.distortion is None:
        return LAGRANGIAN_START_SHARE
    return min(max(1.0 - target.distortion / d_max, 0.01), 1.0)


@torch.no_grad()
def _init_affine(generator: FCGenerator | ConvGenerator, pool: torch.Tensor, share: float) -> None:
    """Start G as mean + c Sigma^(1/2) z, c^2 = share: the source's mean and principal axes, shrunk."""
    x = pool.to(torch.float64)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(x.T).reshape(x.shape[1], x.shape[1]))
    order = torch.argsort(eigenvalues, descending=True)
    axes = eigenvectors[:, order] * eigenvalues[order].clamp_min(0).sqrt()
    generator.init_affine(x.mean(0).float(), (math.sqrt(share) * axes).float())


@torch.no_grad()
def _shrink(
    generator: FCGenerator, latent_dim: int, distortion: float, previous: float, d_max: float, rng: torch.Generator
) -> None:
    """Warm start for a lower rate: shrink Q_Y about its mean by the Gaussian ratio.

    An isotropic Gaussian's Q_Y has total variance D_max - D, so moving from the neighbour's
    D to this target's scales it by (D_max - D) / (D_max - D_prev). Shrinking by hand is
    exact and free; gradient steps would take hundreds of small steps to do the same.
    """
    if distortion <= previous or previous >= d_max:
        return
    share = max(d_max - distortion, 0.0) / (d_max - previous)
    z = torch.randn(8192, latent_dim, generator=rng).to(next(generator.parameters()).device)
    center = generator(z).reshape(len(z), -1).mean(0)
    generator.shrink(math.sqrt(max(share, 1e-4)), center)
