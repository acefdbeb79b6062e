"""Speed of the sub-pixel refiners (``pygmatch.refinement``) on real matches: milliseconds per pair
of the classical correlation refinement (the baseline, measured in the same run) and of the learned
refiner, one and two passes, with each one's share of matches moved within 0.5 px of the truth.
The matches are those the refiner gets in a pipeline: ``--matcher``'s (default ``default``: the
candidate graph network at threshold 0.2, unrefined) on held-out pairs (never coco/val), of SIFT at
``--max-keypoints`` and ``--contrast-threshold`` (the homography benchmarks' 1024 at 0.04; the
photograph pipelines' 4096 at 0.02 gives thousands of matches a pair); 1 torch thread.

    python -m benchmarks.refinement --data ../shared/data/extra/coco-mini --images 50 [--matcher default] [--out benchmarks/results/refinement.md]
    python -m benchmarks.refinement --max-keypoints 4096 --contrast-threshold 0.02 --out benchmarks/results/refinement-4096.md
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pygmatch.commands import flags
from pygmatch.data.features import BENCHMARK_CONTRAST_THRESHOLD, BENCHMARK_MAX_KEYPOINTS, extract
from pygmatch.data.geometry import warp_points
from pygmatch.data.pairs import make_pairs
from pygmatch.refinement import LearnedRefiner, PatchRefiner
from pygmatch.pipeline import Features, Pipeline


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.refinement", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/extra/coco-mini", help="held-out images (never the ones you report on)")
    p.add_argument("--images", type=int, default=50, help="pairs per difficulty (one per image)")
    p.add_argument("--matcher", default="default", help="the pipeline whose matches are refined (its own refiner is left out)")
    p.add_argument("--refiner", default="default", help="learned refiner file (default: the shipped one)")
    p.add_argument("--max-keypoints", type=flags.positive_int, default=BENCHMARK_MAX_KEYPOINTS, help="SIFT keypoints per image")
    p.add_argument("--contrast-threshold", type=flags.contrast_threshold, default=BENCHMARK_CONTRAST_THRESHOLD, help="SIFT's")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/refinement.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    matcher = Pipeline.load(args.matcher, refine=None, threads=1)
    refiners = {"ncc, 2 passes (baseline)": PatchRefiner(iterations=2).refine, "ncc, 1 pass": PatchRefiner(iterations=1).refine,
                "learned, 1 pass": LearnedRefiner.load(args.refiner, iterations=1).refine,
                "learned, 2 passes": LearnedRefiner.load(args.refiner, iterations=2).refine}
    ms = {name: [] for name in refiners}
    within = {name: [] for name in refiners}
    matches = []
    for d in (1.0, 2.0):
        pairs = make_pairs(args.data, seed=7, difficulty=d, max_images=args.images)
        for k in tqdm(range(len(pairs)), desc=f"difficulty {d:g}", unit="pair"):
            im0, im1, H = pairs.image0[k], pairs.image1[k], pairs.H_0to1[k]
            kp0, kp1 = (extract(im, max_keypoints=args.max_keypoints, contrast_threshold=args.contrast_threshold) for im in (im0, im1))
            m = matcher.match(Features(im0, kp0), Features(im1, kp1)).matches
            p0, p1 = kp0.xy[m[:, 0]].astype(np.float64), kp1.xy[m[:, 1]].astype(np.float64)
            matches.append(len(m))
            if not len(m):  # nothing to refine (counted in the median of matches)
                continue
            truth = warp_points(p0, H)
            for name, refine in refiners.items():  # the same matches for every refiner, one after another
                t = time.perf_counter()
                q1 = refine(im0, im1, p0, p1)
                ms[name].append((time.perf_counter() - t) * 1e3)
                within[name].append(np.mean(np.linalg.norm(q1 - truth, axis=1) < 0.5))
    base = np.median(ms["ncc, 2 passes (baseline)"])
    lines = [f"{len(matches)} held-out pairs ({args.images} images of {Path(args.data).name} at difficulties 1 and 2, seed 7), "
             f"the matches of `{args.matcher}` without its refiner (median {np.median(matches):.0f} per pair), SIFT {args.max_keypoints} at "
             f"contrast threshold {args.contrast_threshold:g}, 1 torch thread.", "",
             "| refiner | ms per pair (median) | ratio to ncc, 2 passes | within 0.5 px (%) |", "|---|---:|---:|---:|"]
    for name in refiners:
        med = np.median(ms[name])
        lines.append(f"| {name} | {med:.1f} | {med / base:.2f} | {100 * np.mean(within[name]):.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
