"""Does using the match scores in estimation move AUC@3? Each method's matches on the same pairs,
through several homography estimators: OpenCV RANSAC 3 px (what eval.coco reports), PROSAC
(samples drawn in score order), MAGSAC++, and RANSAC followed by a score-weighted DLT refit of its
inliers.

    python -m benchmarks.estimators --data ../shared/data/extra/coco-mini --max-images 50 \\
        --methods nn,nn-ratio,nn-ratio+refiner,default [--out benchmarks/results/estimators.md]

``--methods``: pipeline names as ``eval.coco`` takes them (``MATCHER[+REFINER]``, ``default``, model
files, checkpoints or run folders of ``train.run``). Use held-out images, never the images you
report on. Writes the markdown table to ``--out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pygmatch.data import make_pairs
from pygmatch.evaluation.evaluate import load_pipelines
from pygmatch.pipeline import Features
from pygmatch.data.features import extract
from pygmatch.data.geometry import corner_error
from pygmatch.data.homography import weighted_dlt
from pygmatch.evaluation.metrics import error_auc


def estimators(pts0, pts1, scores) -> dict:
    out = {}
    if len(pts0) < 4:
        return {k: None for k in ("ransac", "prosac", "magsac", "ransac+weighted")}
    p0, p1 = np.float32(pts0), np.float32(pts1)
    H, inl = cv2.findHomography(p0, p1, cv2.RANSAC, 3.0, maxIters=2000, confidence=0.9999)
    out["ransac"] = H
    order = np.argsort(-scores, kind="stable")  # PROSAC wants the best matches first
    out["prosac"] = cv2.findHomography(p0[order], p1[order], cv2.USAC_PROSAC, 3.0, maxIters=2000, confidence=0.9999)[0]
    out["magsac"] = cv2.findHomography(p0, p1, cv2.USAC_MAGSAC, 3.0, maxIters=2000, confidence=0.9999)[0]
    if H is not None and inl is not None and inl.sum() >= 4:
        keep = inl.ravel().astype(bool)
        out["ransac+weighted"] = weighted_dlt(pts0[keep], pts1[keep], scores[keep])
    else:
        out["ransac+weighted"] = H
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.estimators", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/extra/coco-mini")
    p.add_argument("--max-images", type=int, default=50)
    p.add_argument("--pairs-per-image", type=int, default=2)
    p.add_argument("--difficulty", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--methods", default="nn,nn-ratio,nn-ratio+refiner,default", help="comma-separated pipelines (as eval.coco's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/estimators.md"))
    args = p.parse_args(argv)
    pairs = make_pairs(args.data, args.seed, args.pairs_per_image, args.difficulty, (640, 480), args.max_images)
    methods = load_pipelines([m.strip() for m in args.methods.split(",") if m.strip()])
    errors = {}
    for k in tqdm(range(len(pairs)), desc="pairs"):
        im0, im1, H_true = pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]
        kp0, kp1 = extract(im0), extract(im1)
        for name, pipe in methods.items():
            res = pipe.match(Features(im0, kp0), Features(im1, kp1))
            for est, H in estimators(res.points0, res.points1, np.asarray(res.scores, np.float64)).items():
                errors.setdefault((name, est), []).append(corner_error(H, H_true, pairs.size))
    names = list(methods)
    ests = ["ransac", "prosac", "magsac", "ransac+weighted"]
    lines = [f"AUC@1 / AUC@3 / AUC@5 by estimator: {len(pairs)} pairs of {args.data} (first {args.max_images} images, "
             f"{args.pairs_per_image} per image, difficulty {args.difficulty}, seed {args.seed}), SIFT 1024.", "",
             "| method | " + " | ".join(ests) + " |", "|---|" + "---:|" * len(ests)]
    for n in names:
        cells = []
        for e in ests:
            a1, a3, a5 = (100 * v for v in error_auc(errors[(n, e)], (1, 3, 5)))
            cells.append(f"{a1:.1f} / {a3:.1f} / {a5:.1f}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
