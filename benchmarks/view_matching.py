"""Who judges the candidates of simulated views: the ratio test against the first geometrically
inconsistent neighbour (FGINN) or a graph network, on the same keypoints.

Pairs: ``--data`` at ``--difficulty`` (seed 0, one pair per image, 640x480, as ``eval.coco``; 4 is
extreme viewpoints). Each image's keypoints and those of all its simulated views are found once
(``Pipeline.with_views``); each pair is matched plainly by ``default``, and where that fails
(``SYNTHESIS_MIN_INLIERS``) the rounds of ``Pipeline.synthesised`` run once per row on those same
keypoints: ``fginn`` (``default`` as it ships: the rounds matched by FGINN) and each of
``--methods`` (graph networks: ``default`` or model files, with the learned refiner) judging the
rounds' candidates (``CandidateGraphMatching.match_views`` in place of ``Pipeline.match_views``).
Per row: pairs solved (corner error below 5 px), AUC@3/5/10, matches per pair, the rounds' time
per pair (matching, refinement and RANSAC; not extraction), and the AUC difference to ``fginn`` with a 90 % paired bootstrap interval.

    python -m benchmarks.view_matching --data ../shared/data/coco/val --methods default --out benchmarks/results/view-matching
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pygmatch.data.features import BENCHMARK_CONTRAST_THRESHOLD, BENCHMARK_MAX_KEYPOINTS
from pygmatch.data.geometry import corner_error
from pygmatch.data.pairs import make_pairs
from pygmatch.evaluation.metrics import auc_difference, error_auc
from pygmatch.pipeline import SYNTHESIS_MIN_INLIERS, Pipeline, inlier_count

SOLVED_PX = 5.0
KEYPOINTS, CONTRAST_THRESHOLD = BENCHMARK_MAX_KEYPOINTS, BENCHMARK_CONTRAST_THRESHOLD  # eval.coco's


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.view_matching", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of photographs")
    p.add_argument("--difficulty", type=float, default=4.0)
    p.add_argument("--methods", default="default", help="comma-separated graph networks (default, or model files)")
    p.add_argument("--max-images", type=int)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    pairs = make_pairs(args.data, seed=0, difficulty=args.difficulty, max_images=args.max_images)
    plain = Pipeline.load("default", max_keypoints=KEYPOINTS, contrast_threshold=CONTRAST_THRESHOLD)
    rows = {"fginn": Pipeline.load("default", views="auto", max_keypoints=KEYPOINTS, contrast_threshold=CONTRAST_THRESHOLD)}
    for name in args.methods.split(","):
        pipe = Pipeline.load(name if name == "default" else f"{name}+refiner", views="auto", max_keypoints=KEYPOINTS,
                             contrast_threshold=CONTRAST_THRESHOLD)
        pipe.match_views = pipe.matcher.match_views  # the network judges the rounds' candidates
        rows[name] = pipe
    errors, matches, seconds = ({row: [] for row in rows} for _ in range(3))
    synthesised = 0
    for k in tqdm(range(len(pairs)), desc="pairs", unit="pair"):
        f0, f1 = (plain.with_views(plain.extract(im)) for im in (pairs.image0[k], pairs.image1[k]))
        first = plain.match(f0, f1)
        found = inlier_count(first)
        synthesised += found < SYNTHESIS_MIN_INLIERS
        for row, pipe in rows.items():
            start = time.perf_counter()
            result = first if found >= SYNTHESIS_MIN_INLIERS else (pipe.synthesised(f0, f1, found) or first)
            seconds[row].append(time.perf_counter() - start)
            H = result.homography() if len(result) >= 4 else None
            errors[row].append(np.inf if H is None else corner_error(H, pairs.H_0to1[k], pairs.size))
            matches[row].append(len(result))
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "corner_errors.npz", **{row: np.array(e) for row, e in errors.items()})
    lines = ["# Who judges the candidates of simulated views\n", f"`python -m benchmarks.view_matching --data {args.data} "
             f"--difficulty {args.difficulty:g} --methods {args.methods}`: {len(pairs)} pairs, {synthesised} sent to view synthesis "
             f"(the others keep the plain match, the same in every row); SIFT {KEYPOINTS} per image, 640x480.\n",
             "| row | solved (< 5 px) | AUC@3 | AUC@5 | AUC@10 | matches | rounds s/pair | AUC@3 − fginn [90% CI] | AUC@5 − fginn | AUC@10 − fginn |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for row, e in errors.items():
        e = np.array(e)
        auc = [100 * a for a in error_auc(e, [3, 5, 10])]
        diffs = [auc_difference(e, np.array(errors["fginn"]), t) for t in (3, 5, 10)] if row != "fginn" else None
        cells = ["%+.1f [%+.1f, %+.1f]" % tuple(d) for d in diffs] if diffs else ["", "", ""]
        lines.append(f"| {row} | {int((e < SOLVED_PX).sum())} | {auc[0]:.1f} | {auc[1]:.1f} | {auc[2]:.1f} | {np.mean(matches[row]):.0f} | "
                     f"{np.mean(seconds[row]):.2f} | " + " | ".join(cells) + " |")
        summary[row] = {"solved": int((e < SOLVED_PX).sum()), "auc": auc, "matches": float(np.mean(matches[row])),
                        "rounds_s": float(np.mean(seconds[row]))}
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
