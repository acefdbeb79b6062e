"""How many correct correspondences each kind of descriptor candidates holds, on the pose
development scenes: the graph network can only keep candidates it is given.

For every pair of ``../shared/data/pose`` (SIFT at 2048 keypoints, images at most 1024 px, as the
pipelines extract them), the candidates of each kind (``mutual``, ``mutual2``, ``top2``:
``pygmatch.matching.candidate_graph.descriptor_candidates``) and how many of them lie within 2 px
(of the extraction) of each other's true epipolar line, both ways (the true cameras' fundamental
matrix): consistent with the true geometry, an upper bound on the correct ones (a wrong candidate
can fall on the line). Means per pair, per scene.

    python -m benchmarks.candidate_recall --out benchmarks/results/candidate-recall.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pygmatch import Pipeline
from pygmatch.data.epipolar import epipolar_distance, essential_matrix
from pygmatch.data.scenes import load_scenes
from pygmatch.matching.candidate_graph import descriptor_candidates
from pygmatch.nn.candidate_graph import CANDIDATES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pose"
BAND_PX = 2.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.candidate_recall", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--max-keypoints", type=int, default=2048)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    pipe = Pipeline.load("default", max_keypoints=args.max_keypoints, selection="strongest")  # as measured
    lines = ["# Descriptor candidates and the true geometry", "", f"`python -m benchmarks.candidate_recall --out {args.out}`: "
             f"{args.max_keypoints} SIFT keypoints per image; consistent = within {BAND_PX:g} px of each other's true epipolar "
             "line (extraction pixels). Means per pair.", "",
             "| scene | pairs | candidates | per pair | consistent | consistent, distinct keypoints of image 0 |",
             "|---|---:|---|---:|---:|---:|"]
    for scene in load_scenes(args.data):
        features, counts = {}, {kind: [] for kind in CANDIDATES}
        for a, b in scene.pairs:
            truth = scene.truth(a, b)
            f0, f1 = (features.setdefault(n, pipe.extract(scene.path(n))) for n in (a, b))
            # the true fundamental matrix in the extraction's pixels
            F = np.linalg.inv(f1.S @ truth.K1).T @ essential_matrix(truth.R, truth.t) @ np.linalg.inv(f0.S @ truth.K0)
            for kind in CANDIDATES:
                cand, _ = descriptor_candidates(f0.keypoints.descriptors, f1.keypoints.descriptors, kind)
                ok = epipolar_distance(F, f0.keypoints.xy[cand[:, 0]], f1.keypoints.xy[cand[:, 1]]) < BAND_PX
                counts[kind].append((len(cand), ok.sum(), len(np.unique(cand[ok, 0]))))
        for kind, rows in counts.items():
            n, ok, distinct = np.mean(rows, 0)
            lines.append(f"| {scene.name} | {len(scene.pairs)} | {kind} | {n:.0f} | {ok:.0f} | {distinct:.0f} |")
        print(scene.name, flush=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
