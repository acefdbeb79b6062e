"""Matching time per pair without SIFT, one thread: the candidate graph network's matching stage
against nn and nn-ratio on the same keypoints (SIFT, up to 1024 per image, extracted once per pair),
the stages interleaved pair by pair so that all see the same machine.

    python -m benchmarks.candidate_graph_timing [--matchers candidate-graph,nn-ratio,nn] [--match-threshold 0.2] \\
        [--data ../shared/data/coco/val | --sequences ../shared/data/real-pairs] [--pairs 100]

``--matchers``: matching stages as ``pygmatch.pipeline.load_matcher`` takes them (``candidate-graph``:
the shipped network; a model file, checkpoint or run folder of ``train.run``; ``nn``, ``nn-ratio``);
times are the stages' ``match`` alone (no extraction, no refinement). Pairs: ``--data``'s homography
pairs (``make_pairs``, seed 0, ``--pairs-per-image`` per image, ``--difficulty``, 640x480, as
``eval.coco`` makes them), or the pairs (1, N) of ``--sequences`` (longer side 640 px, as
``eval.hpatches`` reads them); neither: the embedded images. Prints a markdown table; run it on an
otherwise idle machine.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np


def load_pairs(args):
    """A ``PairSet`` or ``SequencePairs`` of at most about ``--pairs`` pairs."""
    from pygmatch.data import EMBEDDED_IMAGES, load_sequences, make_pairs  # noqa: PLC0415

    if args.sequences is not None:
        return load_sequences(args.sequences, 640)
    images = math.ceil(args.pairs / args.pairs_per_image)
    return make_pairs(args.data or EMBEDDED_IMAGES, 0, args.pairs_per_image, args.difficulty, (640, 480), images)


def pair(pairs, k: int):
    load = getattr(pairs, "load_pair", None)
    return load(k) if load is not None else (pairs.image0[k], pairs.image1[k], pairs.H_0to1[k])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.candidate_graph_timing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matchers", default="candidate-graph,nn-ratio,nn", help="comma-separated matching stages; ratios are to the first")
    p.add_argument("--match-threshold", type=float, default=None,
                   help="the graph network's threshold (default: the model's; the default pipeline runs it at 0.2)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, default=None, help="folder of images to make homography pairs of (default: the embedded images)")
    src.add_argument("--sequences", type=Path, default=None, help="folder of sequences: their pairs (1, N)")
    p.add_argument("--pairs-per-image", type=int, default=4)
    p.add_argument("--difficulty", type=float, default=1.0)
    p.add_argument("--pairs", type=int, default=100, help="time at most this many pairs")
    p.add_argument("--max-keypoints", type=int, default=1024)
    args = p.parse_args(argv)
    import torch  # noqa: PLC0415 (after the flags: --help answers without it)

    from pygmatch.data.features import extract  # noqa: PLC0415
    from pygmatch.data.sequences import BadPair  # noqa: PLC0415
    from pygmatch.pipeline import is_learned, load_matcher  # noqa: PLC0415

    torch.set_num_threads(1)
    names = [m.strip() for m in args.matchers.split(",") if m.strip()]
    stages = {n: load_matcher(n, **({"match_threshold": args.match_threshold} if is_learned(n) else {})) for n in names}
    pairs = load_pairs(args)
    items = []
    for k in range(min(args.pairs, len(pairs))):
        try:
            im0, im1, _ = pair(pairs, k)
        except BadPair as e:
            print(f"skipping pair {pairs.names[k]}: {e}", file=sys.stderr)
            continue
        items.append((extract(im0, "sift", args.max_keypoints), extract(im1, "sift", args.max_keypoints),
                      (im0.shape[1], im0.shape[0]), (im1.shape[1], im1.shape[0])))
    times = {n: [] for n in stages}
    for kp0, kp1, size0, size1 in items[:3]:  # warm-up
        for s in stages.values():
            s.match(kp0, kp1, size0, size1)
    for kp0, kp1, size0, size1 in items:
        for name, s in stages.items():
            t = time.perf_counter()
            s.match(kp0, kp1, size0, size1)
            times[name].append(1000 * (time.perf_counter() - t))
    kps = np.mean([len(it[0]) for it in items])
    source = args.sequences or args.data or "the embedded images"
    threshold = "" if args.match_threshold is None else f", graph network threshold {args.match_threshold:g}"
    print(f"{len(items)} pairs of {source}, {kps:.0f} keypoints per image on average, 1 thread{threshold}\n")
    first = names[0]
    print(f"| stage | median ms/pair | mean ms/pair | ratio to {first} (median) |\n|---|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {np.median(t):.1f} | {np.mean(t):.1f} | {np.median(t) / np.median(times[first]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
