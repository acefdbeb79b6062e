"""Paired bootstrap of AUC differences between methods of one evaluation (``corner_errors.npz``
written by ``eval.coco`` / ``eval.hpatches``): the same pairs, resampled together.

    python -m benchmarks.paired benchmarks/results/headline-d1 benchmarks/results/headline-d2 --a default --b nn-ratio+refiner,nn-ratio,nn

Prints a markdown table (the method names are those of the evaluations' ``--methods``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pygmatch.evaluation.metrics import auc_difference


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evaluations", nargs="+", type=Path, help="eval output folders (each with corner_errors.npz)")
    p.add_argument("--a", required=True, help="the method compared")
    p.add_argument("--b", required=True, help="comma-separated methods it is compared with")
    p.add_argument("--thresholds", default="1,3,5")
    p.add_argument("--level", type=float, default=0.9)
    args = p.parse_args(argv)
    loaded = {}
    for folder in args.evaluations:  # every folder checked before the table starts
        if not (folder / "corner_errors.npz").is_file():
            p.error(f"{folder}: no corner_errors.npz (an output folder of eval.coco or eval.hpatches)")
        loaded[folder] = errors = np.load(folder / "corner_errors.npz")
        missing = [m for m in [args.a, *args.b.split(",")] if m not in errors]
        if missing:
            p.error(f"{folder}: no method {', '.join(missing)} in corner_errors.npz (it has {', '.join(errors)})")
    print(f"| evaluation | {args.a} minus | " + " | ".join(f"AUC@{t} [{args.level:.0%} CI]" for t in args.thresholds.split(",")) + " |")
    print("|---|---|" + "---:|" * len(args.thresholds.split(",")))
    for folder, errors in loaded.items():
        for b in args.b.split(","):
            cells = []
            for t in args.thresholds.split(","):
                d, lo, hi = auc_difference(errors[args.a], errors[b], float(t), level=args.level)
                cells.append(f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]")
            print(f"| {folder.name} | {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
