"""What bfloat16 autocast would buy the image methods' shared convolutional stacks on this CPU.

    python benchmarks/conv_bf16.py [--threads 1] [--steps 15]

One training step (forward, backward, Adam) of ``rdbench_plugins._conv.ConvDown`` + ``ConvUp``
(32 hidden channels, 16 latent channels: the NTC and sandwich-upper image defaults) on
batches of 128 images of 8x8 (``digits``) and 28x28 (``mnist-5k``) and 64 of 56x56
(``block-ntc``'s 2x2 blocks of 28x28), in float32 and under
``torch.autocast("cpu", dtype=torch.bfloat16)``: milliseconds per step and their ratio,
measured in one run. The gain depends on the CPU's bfloat16 support (AMX, AVX512-BF16:
``grep -o -e amx_bf16 -e avx512_bf16 /proc/cpuinfo``; the first line names torch's CPU
capability). Nothing in rdbench uses autocast; this measures a lead.
"""

from __future__ import annotations

import argparse
import time

import torch

from rdbench_plugins._conv import ConvDown, ConvUp

CASES = [(128, (8, 8)), (128, (28, 28)), (64, (56, 56))]


def step_ms(batch: int, size: tuple[int, int], bf16: bool, steps: int) -> float:
    """Mean milliseconds of one autoencoder training step, after 3 warm-up steps."""
    torch.manual_seed(0)
    down, up = ConvDown(1, 32, 32), ConvUp(16, 32, 1, size)
    x = torch.rand(batch, 1, *size)
    optimizer = torch.optim.Adam([*down.parameters(), *up.parameters()])

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = up(down(x)[:, :16])
        loss = (y.float() - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads={args.threads}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    for batch, size in CASES:
        fp32, bf16 = step_ms(batch, size, False, args.steps), step_ms(batch, size, True, args.steps)
        print(
            f"batch {batch} of {size[0]}x{size[1]}: float32 {fp32:.1f} ms, bf16 autocast {bf16:.1f} ms, {fp32 / bf16:.2f}x"
        )


if __name__ == "__main__":
    main()
