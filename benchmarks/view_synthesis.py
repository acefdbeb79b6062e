"""Time and accuracy of on-demand view synthesis (``views="auto"``) against the plain pipeline and
ASIFT, per pair, end to end (extraction included), on the same pairs in one run.

Rows: ``plain`` (``Pipeline.load(--method)``), ``auto`` (the same with ``views="auto"``) and
``asift`` (the anchor: OpenCV's ``AffineFeature`` SIFT, 8,192 keypoints, the ratio test and the
same refiner: ``Pipeline.load("nn-ratio+refiner", features="asift")``). The three run one after the
other on each pair, so a slower or busier moment of the machine weighs on all of them. Per row:
pairs solved (corner error of the RANSAC homography, 3 px, below 5 px), AUC@3/5/10, time per pair
(median, mean) and its ratio to ``plain``; for ``auto``, the pairs it sent to view synthesis and
whether its result equals the plain one on every pair the plain match solved.

Pairs: a saved pair set (``--pairs``, e.g. ``eval.coco --save-pairs`` at difficulty 4, extreme),
or made from ``--data`` at ``--difficulty`` (seed 0, one pair per image, 640x480, as ``eval.coco``).
The real sequences: ``eval.hpatches --views auto``.

    python -m benchmarks.view_synthesis --data ../shared/data/coco/val --difficulty 4 --out benchmarks/results/view-synthesis-d4
    python -m benchmarks.view_synthesis --data ../shared/data/coco/val --difficulty 1 --rows plain,auto --out benchmarks/results/view-synthesis-d1
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS, SYNTHESIS_MAX_KEYPOINTS
from pygmatch.data.geometry import corner_error
from pygmatch.data.pairs import PairSet, make_pairs
from pygmatch.evaluation.metrics import error_auc
from pygmatch.pipeline import SYNTHESIS_MIN_INLIERS, Pipeline, inlier_count

SOLVED_PX = 5.0
ROWS = ("plain", "auto", "asift")


def pipelines(method: str, rows: list[str], max_keypoints: int = DEFAULT_MAX_KEYPOINTS,
              contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD) -> dict[str, Pipeline]:
    sift = {"max_keypoints": max_keypoints, "contrast_threshold": contrast_threshold}
    make = {"plain": lambda: Pipeline.load(method, **sift), "auto": lambda: Pipeline.load(method, views="auto", **sift),
            "asift": lambda: Pipeline.load("nn-ratio+refiner", features="asift", max_keypoints=SYNTHESIS_MAX_KEYPOINTS,
                                           contrast_threshold=contrast_threshold)}
    return {row: make[row]() for row in rows}


def load_pairs(args) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(name, image0, image1, H_0to1)]``."""
    pairs = PairSet.load(args.pairs) if args.pairs else make_pairs(args.data, seed=0, difficulty=args.difficulty, max_images=args.max_images)
    return [(pairs.names[k], pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]) for k in range(len(pairs))]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.view_synthesis", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", type=Path, help="a saved pair set (.npz)")
    src.add_argument("--data", type=Path, help="folder of images: one pair per image, seed 0, 640x480")
    p.add_argument("--difficulty", type=float, default=4.0, help="with --data (4: extreme viewpoints)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--method", default="default", help="the pipeline, plain and with views=auto")
    p.add_argument("--rows", default=",".join(ROWS), help=f"which of {', '.join(ROWS)}")
    p.add_argument("--max-keypoints", type=int, default=DEFAULT_MAX_KEYPOINTS, help="plain and auto: SIFT keypoints per image")
    p.add_argument("--contrast-threshold", type=float, default=DEFAULT_CONTRAST_THRESHOLD, help="SIFT's, every row's")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = args.rows.split(",")
    pipes = pipelines(args.method, rows, args.max_keypoints, args.contrast_threshold)
    pairs = load_pairs(args)
    errors = {r: [] for r in rows}
    seconds = {r: [] for r in rows}
    synthesised, same_where_solved = 0, True
    for name, im0, im1, H in tqdm(pairs, desc="pairs", unit="pair"):
        found = {}
        for row, pipe in pipes.items():
            start = time.perf_counter()
            res = pipe.match(im0, im1)
            seconds[row].append(time.perf_counter() - start)
            errors[row].append(corner_error(res.homography(), H, (im0.shape[1], im0.shape[0])))
            found[row] = res
        if "plain" in found and "auto" in found:
            plain, auto = found["plain"], found["auto"]
            if inlier_count(plain) < SYNTHESIS_MIN_INLIERS:
                synthesised += 1
            elif not (np.array_equal(plain.matches, auto.matches) and np.array_equal(plain.points1, auto.points1)):
                same_where_solved = False
    metrics = {"pairs": len(pairs), "method": args.method, "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread",
               "rows": {}}
    base = np.mean(seconds[rows[0]])
    for row in rows:
        e = np.array(errors[row])
        metrics["rows"][row] = {"solved": int((e < SOLVED_PX).sum()), "auc": [round(100 * a, 1) for a in error_auc(e, (3, 5, 10))],
                                "median_s": float(np.median(seconds[row])), "mean_s": float(np.mean(seconds[row])),
                                "ratio": float(np.mean(seconds[row]) / base), "errors": e.tolist()}
    if "auto" in rows and "plain" in rows:
        metrics["auto_synthesised"] = synthesised
        metrics["auto_same_where_plain_solved"] = same_where_solved
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    lines = ["# View synthesis: time and accuracy per pair\n",
             f"`python -m benchmarks.view_synthesis {' '.join(argv if argv is not None else sys.argv[1:])}`: {len(pairs)} pairs, "
             f"method `{args.method}`; {metrics['machine']}, each pair's rows run one after the other.\n",
             f"| row | solved (< {SOLVED_PX:g} px) | AUC@3 | AUC@5 | AUC@10 | median s/pair | mean s/pair | × {rows[0]} (mean) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m = metrics["rows"][row]
        lines.append(f"| {row} | {m['solved']}/{len(pairs)} | {m['auc'][0]} | {m['auc'][1]} | {m['auc'][2]} | {m['median_s']:.2f} | "
                     f"{m['mean_s']:.2f} | {m['ratio']:.2f} |")
    if "auto_synthesised" in metrics:
        lines.append(f"\n`auto` synthesised views on {synthesised} of {len(pairs)} pairs; on the others its result "
                     f"{'equals' if same_where_solved else 'DIFFERS from'} the plain one.")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
