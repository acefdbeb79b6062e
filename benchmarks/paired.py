"""Paired bootstrap of AUC differences between methods of one evaluation (``corner_errors.npz``
written by ``eval.coco`` / ``eval.hpatches``, ``pose_errors.npz`` by ``eval.pose``, whose PoseLib
columns are the methods named ``poselib/METHOD``): the same pairs, resampled together.

    python -m benchmarks.paired benchmarks/results/headline-d1 benchmarks/results/headline-d2 --a default --b nn-ratio+refiner,nn-ratio,nn

``--with FOLDER``: another evaluation of the same pairs (e.g. one run with ``--features xfeat``), whose
methods --a and --b may name too. Prints a markdown table (the method names are those of the
evaluations' ``--methods``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pygmatch.evaluation.metrics import auc_difference


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("evaluations", nargs="+", type=Path, help="eval output folders (each with corner_errors.npz or pose_errors.npz)")
    p.add_argument("--a", required=True, help="the method compared")
    p.add_argument("--b", required=True, help="comma-separated methods it is compared with")
    p.add_argument("--with", dest="others", nargs="+", type=Path, default=[], metavar="FOLDER",
                   help="evaluations of the same pairs whose methods may be named too (the first folder naming one is read)")
    p.add_argument("--thresholds", default=None, help="AUC thresholds (default 1,3,5 px; for poses 5,10,20 degrees)")
    p.add_argument("--level", type=float, default=0.9)
    args = p.parse_args(argv)

    def errors_of(folder: Path) -> dict:
        for name in ("corner_errors.npz", "pose_errors.npz"):
            if (folder / name).is_file():
                return dict(np.load(folder / name))
        p.error(f"{folder}: no corner_errors.npz or pose_errors.npz (an output folder of eval.coco, eval.hpatches or eval.pose)")

    others = [errors_of(folder) for folder in args.others]
    loaded = {}
    for folder in args.evaluations:  # every folder checked before the table starts
        errors = errors_of(folder)
        for other, other_folder in zip(others, args.others):
            if len(next(iter(other.values()))) != len(next(iter(errors.values()))):
                p.error(f"{other_folder}: not the pairs of {folder} (another number of pairs)")
            errors = {**other, **errors}
        loaded[folder] = errors
        missing = [m for m in [args.a, *args.b.split(",")] if m not in errors]
        if missing:
            p.error(f"{folder}: no method {', '.join(missing)} in its errors (it has {', '.join(errors)})")
    if args.thresholds is None:
        args.thresholds = "5,10,20" if all((folder / "pose_errors.npz").is_file() for folder in args.evaluations) else "1,3,5"
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
