"""PFR and ORC on the paper's RCC Gaussian (``gaussian-rcc``, Sec. V-C): exact Q* and NERD-RCC.

    python benchmarks/rcc_gaussian.py [--n-test 2000] [--seed 0] [--threads 1]
                                      [--profile default] [--nerd-profile default] [--set key=value ...]

1. Exact Q*_Y and beta* of the source: PFR (exact stopping rule, capped) and ORC
   (N = 2^ceil(R + orc_margin_bits)) at the targets where R(D) is 1, 2, 4, 6 and 8 bits.
2. NERD-RCC: one NERD curve over the same targets (NERD.curve, the ``nerd`` record's
   ``--nerd-profile`` settings); each point's generator, beta* and rate estimate drive PFR and ORC.
3. Throughput at m = 20 (squared error): candidates evaluated per second by the encoder
   (generation and selection), by the generation alone and by the selection alone.

Each row: mean distortion over n_test test realizations against the target D, mean real bits
per realization (one prefix-coded message each, measured by rdbench's evaluate_codec), the
exact R(D) at the distortion reached and the guarantee R(D) + log2(R(D) + 1) + 5; search
lengths (candidates the stopping rule needed), the share of realizations that reached the
cap (PFR) or N (ORC), encode and decode milliseconds per realization. ``--set`` overrides a
codec setting (e.g. ``--set max_candidates=4194304``).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from rdbench.evaluation import evaluate_codec
from rdbench.interfaces import RDPoint, Source
from rdbench.registry import get_registry
from rdbench.targets import Target
from rdbench_plugins.analytic_sources.gaussian import GaussianSource
from rdbench_plugins.rcc.codebook import Chunk, Codebook
from rdbench_plugins.rcc.codec import RCC
from rdbench_plugins.rcc.search import select

RATES = (1, 2, 4, 6, 8)
HEADER = (
    f"{'codec':>8} {'R*':>3} {'target D':>9} {'mean D':>8} {'dD %':>6} {'bits':>7} {'R(D)':>6} "
    f"{'guar.':>6} {'in':>3} {'search med':>10} {'mean':>9} {'capped %':>8} {'enc ms':>7} {'dec ms':>7}"
)


def codec(name: str, profile: str, overrides: dict) -> RCC:
    entry = get_registry().get("codec", name)
    return entry.create(entry.record.settings(profile, overrides))


def fitted(source: Source, target: str, seed: int, **settings) -> RCC:
    rcc = RCC(**settings)
    rcc.fit(source, Target.parse(target).resolve(source), seed)
    return rcc


def report(name: str, rate: int, point: RDPoint, source: Source, target: Target, n_test: int) -> dict:
    d = point.details
    exact = source.rate_distortion(point.distortion)
    bound = exact + math.log2(exact + 1) + 5
    row = {
        "inside": point.rate_bits <= bound,
        "error": point.distortion / target.distortion - 1,
    }
    print(
        f"{name:>8} {rate:>3} {target.distortion:>9.4f} {point.distortion:>8.4f} {100 * row['error']:>+6.2f} "
        f"{point.rate_bits:>7.3f} {exact:>6.3f} {bound:>6.2f} {'yes' if row['inside'] else 'NO':>3} "
        f"{d['search_length_median']:>10.0f} {d['search_length_mean']:>9.0f} {100 * d['capped_fraction']:>8.2f} "
        f"{1e3 * d['encode_seconds'] / n_test:>7.2f} {1e3 * d['decode_seconds'] / n_test:>7.3f}",
        flush=True,
    )
    return row


def exact_rows(source: Source, targets: list[Target], args: argparse.Namespace) -> list[dict]:
    print(f"\n== Exact Q*_Y, beta* (n_test={args.n_test}, seed={args.seed}) ==\n{HEADER}")
    rows = []
    for name in ("pfr", "orc"):
        for rate, target in zip(RATES, targets):
            point = evaluate_codec(codec(name, args.profile, args.set), source, target, args.seed, args.n_test)
            rows.append({"codec": name, "rate": rate, **report(name, rate, point, source, target, args.n_test)})
    return rows


def nerd_rows(
    source: Source, targets: list[Target], args: argparse.Namespace, folder: Path
) -> tuple[list[dict], tuple[Path, float]]:
    """NERD-RCC rows; returns them and the R=8 point's generator file and rate estimate."""
    entry = get_registry().get("estimator", "nerd")
    t0 = time.perf_counter()
    points = [p for (p,) in entry.create(entry.record.settings(args.nerd_profile)).curve(source, targets, args.seed)]
    print(
        f"\n== NERD-RCC: NERD's Q*_Y (generator), beta* and rate (one curve, nerd profile "
        f"{args.nerd_profile!r}, {time.perf_counter() - t0:.0f} s) =="
    )
    print(f"{'R*':>3} {'NERD D':>8} {'NERD R^':>8} {'R(D)':>6} {'slope':>9} {'slope*':>9}")
    for rate, target, p in zip(RATES, targets, points):
        print(
            f"{rate:>3} {p.distortion:>8.4f} {p.rate_bits:>8.3f} {source.rate_distortion(p.distortion):>6.3f} "
            f"{p.details['slope_bits']:>9.4f} {-source.slope(target.distortion):>9.4f}"
        )
    print(HEADER)
    rows, files = [], []
    for rate, p in zip(RATES, points):
        path = folder / f"generator-R{rate}.pt"
        path.write_bytes(p.artifacts["generator.pt"])
        files.append((path, p.rate_bits))
    for name in ("pfr-nerd", "orc-nerd"):
        for rate, target, (path, nerd_rate) in zip(RATES, targets, files):
            settings = {**args.set, "generator": str(path), "generator_rate_bits": nerd_rate}
            point = evaluate_codec(codec(name, args.profile, settings), source, target, args.seed, args.n_test)
            rows.append({"codec": name, "rate": rate, **report(name, rate, point, source, target, args.n_test)})
    return rows, files[-1]


class PrebuiltCodebook(Codebook):
    """Serves the chunks of message 0, built once: to time the selection without generation."""

    def __init__(self, codebook: Codebook) -> None:
        super().__init__(codebook.channel, codebook.seed, codebook.method, codebook.limit, codebook.chunk_size)
        self._chunks = list(Codebook.chunks(self, 0))

    def chunks(self, message: int) -> Iterator[Chunk]:
        return iter(self._chunks)


def throughput(label: str, rcc: RCC, source: Source, realizations: int, seed: int) -> None:
    x = source.sample(realizations, seed, "test")
    for xi in x:
        rcc.encode(xi)
    encoder = rcc.details()["candidates_per_second"]
    codebook = rcc.codebook
    t0 = time.perf_counter()
    generated = sum(len(codebook.candidates(0, c)) for c in range(codebook.n_chunks))
    generation = generated / (time.perf_counter() - t0)
    prebuilt = PrebuiltCodebook(codebook)
    coordinates = [rcc.channel.coordinates(xi) for xi in x]
    t0 = time.perf_counter()
    scored = sum(select(prebuilt, 0, xc).evaluated for xc in coordinates)
    selection = scored / (time.perf_counter() - t0)
    print(
        f"{label:<44} dim {rcc.channel.dim:>2}: encoder {encoder:>9.3g}/s, generation {generation:>9.3g}/s, "
        f"selection {selection:>9.3g}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-test", type=int, default=2000, help="test realizations per point (>= 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"], help="codec profile")
    parser.add_argument("--nerd-profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="codec setting override (JSON value)"
    )
    args = parser.parse_args()
    args.set = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    source = get_registry().get("source", "gaussian-rcc").create({})
    targets = [Target.parse(f"R={r}").resolve(source) for r in RATES]
    print(f"gaussian-rcc: m=20, sigma_k^2 = 4 exp(-k^2/16); torch threads={args.threads}, codec profile={args.profile}")

    rows = exact_rows(source, targets, args)
    with tempfile.TemporaryDirectory() as folder:
        learned, (generator, nerd_rate) = nerd_rows(source, targets, args, Path(folder))
        rows += learned

        print("\n== Throughput at m = 20, squared error (candidates per second, one thread) ==")
        flat = GaussianSource([1.0] * 20)  # every component active: 20 candidate coordinates
        n = 2**18
        throughput(
            "exact channel, N(0, I_20) at R=8, PFR N=2^18",
            fitted(flat, "R=8", args.seed, n_candidates=n, max_candidates=n),
            flat,
            16,
            args.seed,
        )
        throughput(
            "NERD channel, gaussian-rcc R=8, PFR N=2^18",
            fitted(
                source,
                "R=8",
                args.seed,
                channel="nerd",
                generator=str(generator),
                generator_rate_bits=nerd_rate,
                n_candidates=n,
                max_candidates=n,
            ),
            source,
            16,
            args.seed,
        )

    pfr = [r for r in rows if r["codec"] == "pfr"]
    print("\n== Checks ==")
    print(f"every point inside the guarantee: {all(r['inside'] for r in rows)}")
    print(
        f"exact PFR within 3% of the target D: {all(abs(r['error']) <= 0.03 for r in pfr)} "
        f"(largest |dD| {100 * max(abs(r['error']) for r in pfr):.2f} %)"
    )
    print(f"total wall time: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
