"""NERD's paper profile on MNIST-shaped images (1 x 32 x 32): seconds per training step and in total.

    python benchmarks/nerd_paper_images.py [--device cuda] [--steps N] [--target D/Dmax=0.3]

Meant for a GPU (the paper's budgets: c_d = 32, M up to 40,000 generator samples per step,
10,000 steps, a 2^18-sample read-out). The source is ``mnist`` when its files are in the data
directory (``rdbench data download mnist``), otherwise scikit-learn's digits scaled to 8-bit
levels and resized to 32 x 32 exactly as the ``mnist`` source resizes (Pillow bilinear): real
images of MNIST's shape with no download. ``--steps`` caps the training steps (a quick look
at the time per step on a CPU).

Prints the device, the training batch (B source samples x M generator samples), steps,
seconds per step, training and read-out seconds, and the point (bits per image, distortion
as squared error summed over the pixels, the read-out's log2 M ceiling).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.datasets.resize import resize
from rdbench_plugins.datasets.sources import DigitsImages, digits_pixels


class DigitsAt32(DigitsImages):
    """scikit-learn's digits as 1 x 32 x 32 8-bit images (levels 0..16 -> 0..255, then resized)."""

    shape = (1, 32, 32)
    levels = 255.0

    def load(self, split):
        pixels = np.round(digits_pixels().astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)
        images = resize(pixels, 32, 32)[:, None]
        test = np.arange(len(images)) % 3 == 2
        return images[test if split == "test" else ~test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=None, help="cap on training steps (default: the paper profile's)")
    parser.add_argument("--target", default="D/Dmax=0.3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    registry = get_registry()
    mnist = registry.get("source", "mnist")
    if mnist.unavailable_reason() is None:
        source, label = mnist.create(mnist.record.settings("paper")), "mnist (1x32x32)"
    else:
        source, label = DigitsAt32(), "digits resized to 1x32x32 (mnist files absent)"
    entry = registry.get("estimator", "nerd")
    overrides = {"device": args.device, **({"max_steps": args.steps} if args.steps else {})}
    settings = entry.record.settings("paper", overrides)
    target = Target.parse(args.target).resolve(source)
    print(
        f"source: {label}, D_max {source.d_max:.3f}; target {args.target} (D = {target.distortion:.3f}); "
        f"device {args.device}"
    )
    t0 = time.perf_counter()
    (point,) = entry.create(settings).estimate(source, target, args.seed)
    total = time.perf_counter() - t0
    d = point.details
    print(f"generator: {d['generator']}")
    print(f"train batch (B, M): {tuple(d['train_batch'])}; steps {d['steps']} (converged: {d['converged']})")
    print(f"seconds per training step: {d['train_seconds'] / d['steps']:.4f}")
    print(f"training {d['train_seconds']:.1f} s, read-out {d['readout_seconds']:.1f} s, total {total:.1f} s")
    print(
        f"point: R = {point.rate_bits:.3f} bits per image at D = {point.distortion:.4f} "
        f"(ceiling log2 M = {point.rate_ceiling_bits:.1f} bits, M = {d['m']})"
    )


if __name__ == "__main__":
    main()
