"""Matching time per pair without SIFT, one thread: the candidate graph stage against the verifier
and nn on the same cached keypoints (``candidate_graph_eval.py``'s cache, 1024 SIFT keypoints per
image), methods interleaved pair by pair so that both see the same machine.

    python benchmarks/candidate_graph_timing.py --model pygmatch/weights/candidate_graph.pt [--set coco-d1] [--pairs 100]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from candidate_graph_eval import pair_set  # noqa: E402
from pygmatch.matching.candidate_graph import CandidateGraphMatching  # noqa: E402
from pygmatch.matching.nearest import NearestNeighbor  # noqa: E402
from pygmatch.matching.verifier import CandidateVerifier  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "pygmatch" / "weights" / "candidate_graph.pt"))
    p.add_argument("--set", default="coco-d1")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--cache", type=Path, default=Path("/work/runs/eval-cache"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    items = pair_set(args.set, args.cache, 4)[: args.pairs]
    stages = {"candidate-graph": CandidateGraphMatching.load(args.model), "verifier": CandidateVerifier.load("default"),
              "nn": NearestNeighbor(None)}
    times = {k: [] for k in stages}
    for it in items[:3]:  # warm-up
        for s in stages.values():
            s.match(it["kp0"], it["kp1"], (640, 480), (640, 480))
    for it in items:
        for name, s in stages.items():
            t = time.perf_counter()
            s.match(it["kp0"], it["kp1"], (640, 480), (640, 480))
            times[name].append(1000 * (time.perf_counter() - t))
    kps = np.mean([len(it["kp0"]) for it in items])
    print(f"{len(items)} pairs of {args.set}, {kps:.0f} keypoints per image on average, 1 thread")
    print("| stage | median ms/pair | mean ms/pair | ratio to verifier (median) |\n|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {np.median(t):.1f} | {np.mean(t):.1f} | {np.median(t) / np.median(times['verifier']):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
