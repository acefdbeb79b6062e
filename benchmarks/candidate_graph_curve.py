"""The learning curve of candidate graph runs (the ``.json`` that ``train.candidate_graph`` writes
beside its model): held-out bank loss, and the kept candidates' P@1 and R@1, against pairs seen.

    python benchmarks/candidate_graph_curve.py RUN.json [RUN.json ...] --out benchmarks/results/candidate_graph_curve.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/candidate_graph_curve.png"))
    p.add_argument("--reference", nargs="*", default=[], metavar="NAME=P1",
                   help="horizontal lines on the P@1 panel, e.g. nn=0.763 nn-ratio=0.941 (on the same held-out bank pairs)")
    args = p.parse_args(argv)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for run in args.runs:
        rows = json.loads(run.read_text())["curve"]
        x = [r["pairs"] for r in rows]
        for ax, key in zip(axes, ("val_loss", "val_p1", "val_r1")):
            ax.plot(x, [r[key] for r in rows], marker="o", ms=3, label=run.stem)
    for ref in args.reference:
        name, _, value = ref.partition("=")
        axes[1].axhline(float(value), ls="--", lw=1, color="grey")
        axes[1].text(axes[1].get_xlim()[0], float(value), f" {name}", va="bottom", fontsize=8, color="grey")
    for ax, title in zip(axes, ("held-out bank loss", "P@1 of the kept candidates", "R@1: kept / all within 1 px")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training pairs seen")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
