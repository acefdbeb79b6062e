"""Guided matching after the first match, on the pose development pairs: does it help?

A first match fixes the geometry of the pair (the fundamental matrix); with it, each keypoint's
correspondence can only lie in a band around its epipolar line, and among the few descriptors in
that band the ratio test is far less ambiguous than among all of them (Hartley and Zisserman,
section 11.9; COLMAP's ``guided_matching``). Here: the pipeline's match, its fundamental matrix by
RANSAC (1 px, at least 15 inliers, else nothing is added), then mutual nearest neighbours among the
keypoints not yet matched whose epipolar distances are within BAND px both ways, passing the ratio
test against the nearest in-band neighbour more than 10 px from the first; all matches refined
again by the pipeline's refiner. Relative pose on the 111 pose development pairs (OpenCV and
PoseLib, 1 px), paired bootstrap against the same pipeline without guidance.

    python -m benchmarks.guided_matching --out benchmarks/results/guided-matching

Not part of the library: it lowered the pose AUC on these pairs (the report), so no pipeline
offers it."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from pygmatch import Pipeline
from pygmatch.data.epipolar import epipolar_distance, estimate_fundamental, estimate_relative_pose
from pygmatch.data.images import points_to_original
from pygmatch.data.scenes import load_scenes
from pygmatch.evaluation.metrics import auc_difference, error_auc
from pygmatch.evaluation.pose import pose_error
from pygmatch.matching.nearest import FGINN_RADIUS, RATIO

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pose"
METHODS = ("default", "nn-ratio+refiner")
MIN_INLIERS = 15


def guided_match(desc0: np.ndarray, desc1: np.ndarray, xy0: np.ndarray, xy1: np.ndarray, allowed: np.ndarray,
                 ratio: float = RATIO, radius: float = FGINN_RADIUS, candidates: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours among the ``allowed`` (N, M) keypoint pairs only, that pass the
    ratio test against the nearest allowed neighbour more than ``radius`` px from the first (the
    first geometrically inconsistent one, as ``fginn_match``; among the ``candidates`` nearest
    allowed; none: the test passes), both ways. Same return as ``nearest_neighbor_match``."""
    n, m = len(desc0), len(desc1)
    if n == 0 or m == 0 or not allowed.any():
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    sim = np.asarray(desc0, np.float32) @ np.asarray(desc1, np.float32).T
    sim[~allowed] = -np.inf

    def one_way(s, xy_b):  # nearest allowed neighbour, its similarity, whether it passes
        k = min(candidates, s.shape[1])
        order = np.argpartition(-s, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(s, order, 1)
        sort = np.argsort(-top, axis=1)
        order, top = np.take_along_axis(order, sort, 1), np.take_along_axis(top, sort, 1)
        d2 = np.maximum(2.0 - 2.0 * top, 0.0)  # inf where not allowed
        far = (np.linalg.norm(xy_b[order[:, 1:]] - xy_b[order[:, :1]], axis=2) > radius) & np.isfinite(d2[:, 1:])
        second = np.where(far.any(1), d2[np.arange(len(s)), far.argmax(1) + 1], np.inf)
        return order[:, 0], d2[:, 0], np.isfinite(d2[:, 0]) & (d2[:, 0] < ratio**2 * second)

    xy0, xy1 = np.asarray(xy0, np.float64).reshape(-1, 2), np.asarray(xy1, np.float64).reshape(-1, 2)
    nn0, d0, pass0 = one_way(sim, xy1)
    nn1, _, pass1 = one_way(sim.T, xy0)
    i = np.nonzero((nn1[nn0] == np.arange(n)) & pass0 & pass1[nn0])[0]
    return np.stack([i, nn0[i]], 1).astype(np.int64), (1.0 - d0[i] / 4.0).astype(np.float32)


def guided(pipe: Pipeline, res, band: float):
    """``res`` with the guided matches of its keypoints added (band in the extraction's pixels), all
    refined again; ``res`` itself when its fundamental matrix has fewer than ``MIN_INLIERS`` inliers."""
    f0, f1 = res.features0, res.features1
    if len(res) < 8:
        return res
    p0 = f0.keypoints.xy[res.matches[:, 0]].astype(np.float64)
    p1 = res.points1 if np.array_equal(f1.S, np.eye(3)) else points_to_original(res.points1, f1.S)  # original -> extraction pixels
    found = estimate_fundamental(p0, p1, 1.0)
    if found is None or found[1].sum() < MIN_INLIERS:
        return res
    allowed = epipolar_distance(found[0], f0.keypoints.xy, f1.keypoints.xy, pairwise=True) < band
    allowed[res.matches[:, 0], :] = False
    allowed[:, res.matches[:, 1]] = False
    m, s = guided_match(f0.keypoints.descriptors, f1.keypoints.descriptors, f0.keypoints.xy, f1.keypoints.xy, allowed)
    return pipe.result(f0, f1, np.concatenate([res.matches, m]), np.concatenate([res.scores, s]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.guided_matching", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--bands", default="1,2,4", help="epipolar bands to try, px of the extraction (comma-separated)")
    ap.add_argument("--max-keypoints", type=int, default=2048)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    bands = [float(b) for b in args.bands.split(",")]
    scenes = load_scenes(args.data)
    pipes = {name: Pipeline.load(name, max_keypoints=args.max_keypoints, selection="strongest") for name in METHODS}  # as measured
    errors: dict[str, list[float]] = {}
    matches: dict[str, list[int]] = {}
    scene_of = []
    for scene in scenes:
        cache: dict = {}
        for a, b in scene.pairs:
            truth = scene.truth(a, b)
            scene_of.append(scene.name)
            for name, pipe in pipes.items():
                f0, f1 = (cache.setdefault((name, n), pipe.extract(scene.path(n))) for n in (a, b))
                res = pipe.match(f0, f1)
                for variant, r in [(name, res)] + [(f"{name}+guided{band:g}", guided(pipe, res, band)) for band in bands]:
                    matches.setdefault(variant, []).append(len(r))
                    for e in ("opencv", "poselib"):
                        est = estimate_relative_pose(r.points0, r.points1, truth.K0, truth.K1, 1.0, e)
                        errors.setdefault(f"{e}/{variant}", []).append(math.inf if est is None else pose_error(est.R, est.t, truth.R, truth.t))
            print(f"{len(scene_of)} pairs", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scene_of = np.array(scene_of)
    lines = ["# Guided matching on the pose development pairs", "",
             f"`python -m benchmarks.guided_matching --out {args.out}` ({len(scene_of)} pairs of {args.data}, "
             f"{args.max_keypoints} keypoints, bands {args.bands} px). AUC of the pose error (%); differences against the "
             "same pipeline unguided with a 90 % paired bootstrap interval.", "",
             "| estimator | method | AUC@5 | AUC@10 | AUC@20 | " + " | ".join(f"AUC@5 {s}" for s in dict.fromkeys(scene_of)) +
             " | matches | AUC@5 minus unguided [90% CI] |", "|---|---|---:|---:|---:|" + "---:|" * len(set(scene_of)) + "---:|---:|"]
    metrics = {}
    for key, errs in errors.items():
        e, variant = key.split("/", 1)
        errs = np.array(errs)
        aucs = [100 * x for x in error_auc(errs, [5, 10, 20])]
        per_scene = {s: 100 * error_auc(errs[scene_of == s], [5])[0] for s in dict.fromkeys(scene_of)}
        base = variant.split("+guided")[0]
        diff = auc_difference(errs, np.array(errors[f"{e}/{base}"]), 5) if variant != base else None
        metrics[key] = {"auc": aucs, "auc@5_by_scene": per_scene, "matches": float(np.mean(matches[variant])), "minus_unguided": diff}
        lines.append(f"| {e} | {variant} | " + " | ".join(f"{x:.1f}" for x in aucs) + " | " + " | ".join(f"{x:.1f}" for x in per_scene.values())
                     + f" | {np.mean(matches[variant]):.0f} | " + ("" if diff is None else f"{diff[0]:+.1f} [{diff[1]:+.1f}, {diff[2]:+.1f}]") + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
