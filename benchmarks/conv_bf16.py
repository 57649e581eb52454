"""What mixed precision buys the image methods' training steps on this CPU.

    python benchmarks/conv_bf16.py [--threads 1] [--steps 15]

Milliseconds per training step (forward, backward, Adam) with ``train_dtype`` float32 and
bfloat16 (:mod:`rdbench_plugins._precision`: the conv layers in bfloat16, latents and
measurements in float32), and their ratio, measured in one run:

* the shared conv stacks ``ConvDown`` + ``ConvUp`` (32 hidden channels, 16 latent channels:
  the NTC and sandwich-upper image defaults) on batches of 128 images of 8x8 (``digits``)
  and 28x28 (``mnist-5k``) and 64 of 56x56 (``block-ntc``'s 2x2 blocks of 28x28);
* NERD's conv generator at its budgets (c_d 32, M = 4096 draws against B = 256 images of
  8x8; c_d 16, M = 2048 against B = 512 of 28x28), with a softmax-weighted distance loss.

The built-in budgets train images of more than 256 pixels in bfloat16
(:data:`rdbench_plugins.budgets.TRAIN_DTYPES`). The gain depends on the CPU's bfloat16
support (AMX, AVX512-BF16: ``grep -o -e amx_bf16 -e avx512_bf16 /proc/cpuinfo``; the first
line names torch's CPU capability).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from rdbench_plugins._conv import ConvDown, ConvUp
from rdbench_plugins._precision import use_train_dtype
from rdbench_plugins.nerd.generators import build_generator, generator_config

AUTOENCODER_CASES = [(128, (8, 8)), (128, (28, 28)), (64, (56, 56))]
GENERATOR_CASES = [((1, 8, 8), 32, 4096, 256), ((1, 28, 28), 16, 2048, 512)]


def timed_ms(step: Callable[[], None], steps: int) -> float:
    """Mean milliseconds of ``step()``, after 3 warm-up calls."""
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000 * (time.perf_counter() - t0) / steps


def autoencoder_step(batch: int, size: tuple[int, int], dtype: str) -> Callable[[], None]:
    torch.manual_seed(0)
    down, up = ConvDown(1, 32, 32), ConvUp(16, 32, 1, size)
    for stack in (down, up):
        use_train_dtype(stack, dtype)
    x = torch.rand(batch, 1, *size)
    optimizer = torch.optim.Adam([*down.parameters(), *up.parameters()])

    def step() -> None:
        loss = (up(down(x)[:, :16]) - x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def generator_step(shape: tuple[int, int, int], channels: int, m: int, b: int, dtype: str) -> Callable[[], None]:
    torch.manual_seed(0)
    generator = use_train_dtype(build_generator(generator_config(shape, channels=channels)), dtype)
    x = torch.rand(b, shape[0] * shape[1] * shape[2])
    optimizer = torch.optim.Adam(generator.parameters())

    def step() -> None:
        y = generator(torch.randn(m, 128)).reshape(m, -1)
        d = (x * x).sum(1, keepdim=True) - 2 * x @ y.T + (y * y).sum(1)
        loss = (torch.softmax(-d.detach(), 1) * d).sum() / b
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads={args.threads}, CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    rows = [
        (
            f"conv stacks, batch {batch} of {h}x{w}",
            lambda dtype, batch=batch, size=(h, w): autoencoder_step(batch, size, dtype),
        )
        for batch, (h, w) in AUTOENCODER_CASES
    ] + [
        (
            f"NERD generator {s[1]}x{s[2]} c_d {c}, M {m} x B {b}",
            lambda dtype, s=s, c=c, m=m, b=b: generator_step(s, c, m, b, dtype),
        )
        for s, c, m, b in GENERATOR_CASES
    ]
    for name, make in rows:
        fp32, bf16 = (timed_ms(make(dtype), args.steps) for dtype in ("float32", "bfloat16"))
        print(f"{name:<42} float32 {fp32:7.1f} ms  bfloat16 {bf16:7.1f} ms  {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
