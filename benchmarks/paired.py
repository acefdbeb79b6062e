"""Paired bootstrap of AUC differences between methods of one evaluation (``corner_errors.npz``
written by ``eval.coco`` / ``eval.hpatches``): the same pairs, resampled together.

    python benchmarks/paired.py benchmarks/results/coco-val-d1 --a NEW --b nn,nn-ratio,default
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pygmatch.evaluation.metrics import auc_difference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("evaluations", nargs="+", type=Path, help="eval output folders (each with corner_errors.npz)")
    p.add_argument("--a", required=True, help="the method compared")
    p.add_argument("--b", required=True, help="comma-separated methods it is compared with")
    p.add_argument("--thresholds", default="1,3,5")
    p.add_argument("--level", type=float, default=0.9)
    args = p.parse_args()
    print(f"| evaluation | {args.a} minus | " + " | ".join(f"AUC@{t} [{args.level:.0%} CI]" for t in args.thresholds.split(",")) + " |")
    print("|---|---|" + "---:|" * len(args.thresholds.split(",")))
    for folder in args.evaluations:
        errors = np.load(folder / "corner_errors.npz")
        for b in args.b.split(","):
            cells = []
            for t in args.thresholds.split(","):
                d, lo, hi = auc_difference(errors[args.a], errors[b], float(t), level=args.level)
                cells.append(f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]")
            print(f"| {folder.name} | {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
