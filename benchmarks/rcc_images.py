"""How fast NERD-RCC draws candidates on images: samples per second of NERD's conv generator.

    python benchmarks/rcc_images.py [--batch 4096] [--repeats 5] [--threads 1]

NERD-RCC (``pfr-nerd``, ``orc-nerd``) spends its time on images drawing N = 2^ceil(C + 8)
candidates per realization through the trained generator. Prints, per image shape and c_d of
the built-in budgets (8 x 8 digits, 28 x 28 mnist-5k, 3 x 32 x 32), samples per second of the
generator as trained (``ConvGenerator``), of the sampling form before polyphase layers and
in-place ReLUs (dense small maps only), and of the sampling form (``for_sampling()``: dense
small maps, polyphase last layer, in-place ReLUs), with its ratios to the other two measured
in the same run, and the largest difference between the forms' outputs (random weights).
Then the sampling form in bfloat16, as NERD-RCC draws image candidates
(``candidate_dtype``, :func:`rdbench_plugins._precision.computing_in`): samples per second,
its ratio to float32 sampling and its largest difference from it. Best of ``--repeats``
timings; the bfloat16 gain depends on the CPU's bfloat16 units (the first line names
torch's CPU capability).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from rdbench_plugins._precision import computing_in
from rdbench_plugins.nerd.generators import SamplingConvGenerator, build_generator, generator_config

CASES = [((1, 8, 8), 32, "digits"), ((1, 28, 28), 16, "mnist-5k"), ((3, 32, 32), 32, "svhn")]


class DenseOnly(SamplingConvGenerator):
    """The sampling form with transposed convolutions and out-of-place ReLUs after the dense head."""

    POLYPHASE_MAX_CHANNELS = 0

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__(generator)
        for stack in (self.head, self.tail):
            for i, layer in enumerate(stack):
                if isinstance(layer, torch.nn.ReLU):
                    stack[i] = torch.nn.ReLU()


def samples_per_second(generator: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, repeats: int) -> float:
    generator(z)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generator(z)
        best = min(best, time.perf_counter() - t0)
    return len(z) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"samples/s, batches of {args.batch}, {args.threads} thread(s), best of {args.repeats}; "
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    header = (
        f"{'source':<9} {'shape':<10} {'c_d':>3} {'trained':>9} {'dense':>9} {'sampling':>9} {'/trained':>8} "
        f"{'/dense':>7} {'max |diff|':>10} {'bfloat16':>9} {'/float32':>8} {'max |diff|':>10}"
    )
    print(header)
    for shape, channels, name in CASES:
        generator = build_generator(generator_config(shape, channels=channels))
        with torch.inference_mode():
            for p in generator.parameters():
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(p.numel()))
            z = torch.randn(args.batch, 128, generator=torch.Generator().manual_seed(0))
            forms = [generator, DenseOnly(generator), generator.for_sampling()]
            rates = [samples_per_second(form, z, args.repeats) for form in forms]
            reference = generator(z)
            diff = float((forms[2](z) - reference).abs().max())
            with computing_in("bfloat16"):
                bf16 = samples_per_second(forms[2], z, args.repeats)
                drawn = forms[2](z).float()
            bf16_diff = float((drawn - reference).abs().max())
        shape_text = "x".join(map(str, shape))
        print(
            f"{name:<9} {shape_text:<10} {channels:>3} {rates[0]:>9.0f} {rates[1]:>9.0f} {rates[2]:>9.0f} "
            f"{rates[2] / rates[0]:>7.2f}x {rates[2] / rates[1]:>6.2f}x {diff:>10.1e} "
            f"{bf16:>9.0f} {bf16 / rates[2]:>7.2f}x {bf16_diff:>10.1e}"
        )


if __name__ == "__main__":
    main()
