"""Seconds per pose pair as a user with one pair pays them: both photographs read and their keypoints
extracted, matched, refined and the relative pose estimated, for each method (``eval.pose``'s names;
``@auto``: with ``views="auto"``; ``#K``: at K keypoints instead of ``--max-keypoints``), one after
another on the same pairs, one thread. Run it with
nothing else on the machine; the ratios are to the first method, measured in the same run.

    python -m benchmarks.pose_timing --data DIR --methods default,default@auto,default#4096,aliked+lightglue --every 4 --out FILE.md
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pygmatch.data.epipolar import estimate_relative_pose
from pygmatch.data.scenes import load_scenes
from pygmatch.evaluation.pose import load_pose_pipelines
from pygmatch.files import write_text

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pose"


def load(method: str, max_keypoints: int):
    """The pipeline of a ``NAME[@auto][#K]`` method."""
    method, _, budget = method.partition("#")
    name, _, views = method.partition("@")
    return load_pose_pipelines([name], max_keypoints=int(budget or max_keypoints), threads=1, views=views or "plain")[name]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.pose_timing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--methods", default="default,default@auto")
    ap.add_argument("--max-keypoints", type=int, default=1024)
    ap.add_argument("--every", type=int, default=1, help="time every N-th pair of each scene")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    scenes = load_scenes(args.data)
    pairs = [(scene, a, b) for scene in scenes for a, b in scene.pairs[:: args.every]]
    methods = args.methods.split(",")
    seconds = {m: [] for m in methods}
    for method in methods:
        pipe = load(method, args.max_keypoints)
        scene, a, b = pairs[0]
        pipe.match(scene.path(a), scene.path(b))  # warm-up: weights loaded, caches filled
        for scene, a, b in pairs:
            truth = scene.truth(a, b)
            start = time.perf_counter()
            res = pipe.match(scene.path(a), scene.path(b))
            estimate_relative_pose(res.points0, res.points1, truth.K0, truth.K1)
            seconds[method].append(time.perf_counter() - start)
        print(f"{method}: {np.mean(seconds[method]):.3f} s per pair", flush=True)
    first = np.mean(seconds[methods[0]])
    lines = ["# Seconds per pose pair", "", f"`python -m benchmarks.pose_timing --data {args.data} --methods {args.methods} "
             f"--max-keypoints {args.max_keypoints} --every {args.every}`: {len(pairs)} pairs of {len(scenes)} scenes (every "
             f"{args.every}th of each scene's list), both photographs read and extracted, matched, refined, the pose estimated "
             "(OpenCV); one thread, one method after another.", "",
             "| method | mean s/pair | median | max | × first |", "|---|---:|---:|---:|---:|"]
    for m in methods:
        s = np.array(seconds[m])
        lines.append(f"| {m} | {s.mean():.3f} | {np.median(s):.3f} | {s.max():.2f} | {s.mean() / first:.2f} |")
    write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
