"""The sandwich upper bound's read-out noise, and why its final noise shrink stays local.

    python benchmarks/sandwich_noise.py [--seeds 6] [--threads 1]

(a) gaussian-m20 at R=4, default-profile settings: one trained model, its test read-out
repeated with other noise draws (the test realizations fixed). Prints each draw's rate, its
gap to the exact R(D) at the distortion reached, the spread of those gaps and the gap
standard error the cell reports: how far one cell's gap may move with the draw alone.

(b) digits at D/Dmax = 0.3, default-profile settings: one trained model, the rate R (bits per
image), the distortion D / D_target and R + lambda D on its held-out validation images, with
q(z|x)'s standard deviations scaled by e^u. Training leaves R + lambda D stationary at u = 0;
how fast it grows away from 0 is what a shrink of the noise onto the target costs
(``rdbench_plugins.sandwich.upper.NOISE_REACH`` keeps it local).
"""

from __future__ import annotations

import argparse
import copy
import math

import torch

from rdbench.registry import get_registry
from rdbench.spec import resolve_settings
from rdbench.targets import Target
from rdbench.units import to_bits
from rdbench_plugins._holdout import held_out
from rdbench_plugins.sandwich.upper import SandwichUpper


class Recording(SandwichUpper):
    """The upper bound, keeping what its last read-out saw: (model, x, distortion, lambda)."""

    last: tuple = ()

    @staticmethod
    def _evaluate(model, x, distortion, generator, lam):
        Recording.last = (model, x, distortion, lam)
        return SandwichUpper._evaluate(model, x, distortion, generator, lam)


def trained(name: str, target: str):
    """(source, resolved target, point, settings) of a default-profile fit, the model recorded."""
    registry = get_registry()
    entry = registry.get("source", name)
    source = entry.create(entry.record.settings("default"))
    upper = registry.get("estimator", "sandwich-upper")
    settings = resolve_settings(upper, upper.record.settings("default"), source)
    resolved = Target.parse(target).resolve(source)
    ((point,),) = Recording(**settings).curve(source, [resolved], 0)
    return source, resolved, point, settings


def readout_noise(seeds: int) -> None:
    source, target, point, _ = trained("gaussian-m20", "R=4")
    model, x, distortion, lam = Recording.last
    print("== (a) gaussian-m20 R=4: the test read-out with other noise draws ==")
    print(
        f"cell: {point.rate_bits:.4f} bits, gap {point.rate_bits - source.rate_distortion(point.distortion):+.4f}, "
        f"gap SE {point.details['gap_se_bits']:.4f}"
    )
    gaps = []
    for s in range(seeds):
        rate, dist, _ = SandwichUpper._evaluate(model, x, distortion, torch.Generator().manual_seed(1000 + s), lam)
        gaps.append(rate.mean - source.rate_distortion(dist.mean))
        print(f"draw {s}: {rate.mean:.4f} bits at D = {dist.mean:.4f}, gap {gaps[-1]:+.4f}")
    mean = sum(gaps) / len(gaps)
    spread = math.sqrt(sum((g - mean) ** 2 for g in gaps) / max(1, len(gaps) - 1))
    print(f"gaps {min(gaps):+.4f} .. {max(gaps):+.4f}, mean {mean:+.4f}, std over draws {spread:.4f}\n")


def noise_scale_cost() -> None:
    source, target, point, settings = trained("digits", "D/Dmax=0.3")
    model, _, distortion, lam = Recording.last
    _, val = held_out(source, settings["n_train"], settings["n_val"], 0)
    val_x = torch.as_tensor(val, dtype=torch.float32)
    print(f"== (b) digits D/Dmax=0.3: the noise scale e^u on {len(val_x)} held-out images (lambda {lam:.3f}) ==")
    for u in (-0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2):
        scaled = copy.deepcopy(model)
        scaled.scale_noise(math.exp(u))
        with torch.no_grad():
            rate, y = scaled(val_x, torch.Generator().manual_seed(3))
        r, d = float(to_bits(rate).mean()), float(distortion(val_x, y).mean())
        print(
            f"u {u:+.2f}: R {r:7.3f} bits  D/D_target {d / float(target.distortion):.4f}  R + lambda D {r + lam * d:8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=6, help="noise draws of (a)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    readout_noise(args.seeds)
    noise_scale_cost()


if __name__ == "__main__":
    main()
