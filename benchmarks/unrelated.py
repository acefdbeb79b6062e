"""Matches on images that do not overlap, and the accuracy on pairs that do, of the learned matcher.

A matcher must be able to say "these two images do not overlap". Unrelated pairs: each of the
``--data`` photographs with two other photographs of the folder (the next one and the 7th next),
and each image of a ``--sequences`` sequence with the same-numbered image of the next sequence.
Per pipeline: the median (and 90th percentile, largest) number of matches and the share of pairs
where OpenCV's RANSAC homography (``cv2.findHomography``, 3 px) finds at least 8 inliers among
them, which in a reconstruction over many pairs is a false edge.

True pairs, the other side of the trade: RANSAC AUC@1/3/5 of the same pipelines on ``--data``'s
homography pairs (``make_pairs``, seed 0, one pair per image, 640x480: what ``eval.coco`` makes)
at difficulties 1 and 2, and on the sequences' pairs (1, N) at their own resolution.

``--methods`` (pipeline names as ``eval.coco`` takes them): by default ``default`` (SIFT → the
candidate graph network at threshold 0.2 → the learned refiner), ``nn-ratio+refiner`` (Lowe's ratio
test, 0.8, followed by the same refiner), and nn and nn-ratio for scale. Every pipeline whose matcher
is the graph network is also run as ``…, always padded``: the same with ``pad_from=0``, every pair
padded to ``min_keep`` candidates, the behaviour before ``pad_from`` existed.

    python -m benchmarks.unrelated --data ../shared/data/coco/val --sequences ../shared/data/real-pairs [--out benchmarks/results/unrelated.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS
from pygmatch.data.geometry import corner_error
from pygmatch.data.homography import estimate_homography
from pygmatch.data.images import list_images
from pygmatch.data.pairs import make_pairs
from pygmatch.data.sequences import find_sequences, read_sequence
from pygmatch.evaluation.metrics import error_auc
from pygmatch.pipeline import Pipeline, is_learned

SHIFTS = (1, 7)  # each photograph is paired with the one this many places further (wrapping)
METHODS = "default,nn-ratio+refiner,nn,nn-ratio"


def build_pipelines(names: list[str], views: str = "plain", **extraction) -> dict[str, Pipeline]:
    """The pipelines ``names`` (``extraction``: ``Pipeline.load``'s ``max_keypoints``,
    ``contrast_threshold``); each whose matcher is the graph network also with ``pad_from=0``
    (always padded to ``min_keep``), right after it. ``views="auto"``: each with on-demand view
    synthesis instead (``Pipeline.match``), no padded variant."""
    if views != "plain":
        return {f"{name}, views {views}": Pipeline.load(name, views=views, **extraction) for name in names}
    pipes = {}
    for name in names:
        pipes[name] = Pipeline.load(name, **extraction)
        if is_learned(name):
            pipes[name + ", always padded"] = Pipeline.load(name, pad_from=0, **extraction)
    return pipes


def ransac_inliers(points0: np.ndarray, points1: np.ndarray, px: float = 3.0) -> int:
    if len(points0) < 4:
        return 0
    _, mask = cv2.findHomography(points0.astype(np.float64), points1.astype(np.float64), cv2.RANSAC, px)
    return 0 if mask is None else int(mask.sum())


def unrelated_pairs(data: Path | None, sequences: Path | None, images: int | None) -> list[tuple[str, str, str]]:
    """``[(group, path0, path1)]``: photographs paired with different ones."""
    out = []
    if data is not None:
        files = list_images(data)[:images]
        out += [(f"photos ({data.name})", str(files[i]), str(files[(i + s) % len(files)])) for s in SHIFTS for i in range(len(files))]
    if sequences is not None:
        seqs = [read_sequence(f)[0] for f in find_sequences(sequences)]
        for a, b in zip(seqs, seqs[1:] + seqs[:1]):
            firsts = [(a[0].image0, b[0].image0)] + [(p.image1, q.image1) for p, q in zip(a, b)]
            out += [("across sequences", str(x), str(y)) for x, y in firsts]
    return out


def true_auc(pipes: dict[str, Pipeline], data: Path | None, sequences: Path | None, images: int | None) -> dict[str, dict[str, list[float]]]:
    """``{set: {pipeline: [AUC@1, @3, @5]}}`` (percent) on the true pairs."""
    sets: dict[str, list] = {}
    if data is not None:
        for d in (1.0, 2.0):
            ps = make_pairs(data, seed=0, difficulty=d, max_images=images)
            sets[f"{data.name} homographies, difficulty {d:g}"] = [(ps.image0[k], ps.image1[k], ps.H_0to1[k]) for k in range(len(ps))]
    if sequences is not None:
        sets["sequences (1, N)"] = [(str(p.image0), str(p.image1), p.H_0to1) for f in find_sequences(sequences) for p in read_sequence(f)[0]]
    out: dict[str, dict[str, list[float]]] = {}
    first = next(iter(pipes.values()))
    for name, items in sets.items():
        errors = {p: [] for p in pipes}
        for im0, im1, H in tqdm(items, desc=name, unit="pair"):
            f0, f1 = first.extract(im0), first.extract(im1)
            size0 = f0.original_size
            for pname, pipe in pipes.items():
                r = pipe.match(f0, f1)
                errors[pname].append(corner_error(estimate_homography(r.points0, r.points1, "ransac") if len(r) >= 4 else None, H, size0))
        out[name] = {p: [100 * a for a in error_auc(np.array(e), (1, 3, 5))] for p, e in errors.items()}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.unrelated", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data/coco/val"), help="folder of photographs")
    p.add_argument("--sequences", type=Path, default=Path("../shared/data/real-pairs"), help="folder of sequences")
    p.add_argument("--methods", default=METHODS, help=f"comma-separated pipelines, as eval.coco's (default {METHODS})")
    p.add_argument("--images", type=int, default=None, help="use only the first N photographs of --data")
    p.add_argument("--no-true-pairs", action="store_true", help="only the unrelated pairs")
    p.add_argument("--views", choices=("plain", "auto"), default="plain", help="the pipelines' view synthesis (Pipeline.match)")
    p.add_argument("--max-keypoints", type=int, default=DEFAULT_MAX_KEYPOINTS, help="SIFT keypoints per image (the pipelines' default)")
    p.add_argument("--contrast-threshold", type=float, default=DEFAULT_CONTRAST_THRESHOLD, help="SIFT's (the pipelines' default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/unrelated.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    start = time.perf_counter()
    pipes = build_pipelines([m.strip() for m in args.methods.split(",") if m.strip()], args.views, max_keypoints=args.max_keypoints,
                            contrast_threshold=args.contrast_threshold)
    pairs = unrelated_pairs(args.data, args.sequences, args.images)
    first = next(iter(pipes.values()))
    cache: dict[str, object] = {}
    counts = {p: [] for p in pipes}
    inliers = {p: [] for p in pipes}
    groups = []
    for group, a, b in tqdm(pairs, desc="unrelated pairs", unit="pair"):
        for path in (a, b):
            if path not in cache:
                cache[path] = first.extract(path)
        groups.append(group)
        for name, pipe in pipes.items():
            r = pipe.match(cache[a], cache[b])
            counts[name].append(len(r))
            inliers[name].append(ransac_inliers(r.points0, r.points1))
    groups = np.array(groups)

    lines = ["# Unrelated images: matches where there is nothing to match", "",
             f"`python -m benchmarks.unrelated {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| pairs | pipeline | pairs | median matches | 90th pct | largest | pairs with >= 8 RANSAC inliers |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for group in ["all"] + sorted(set(groups.tolist())):
        sel = np.ones(len(groups), bool) if group == "all" else groups == group
        for name in pipes:
            c, i = np.array(counts[name])[sel], np.array(inliers[name])[sel]
            lines.append(f"| {group} | {name} | {sel.sum()} | {np.median(c):g} | {np.percentile(c, 90):g} | {c.max()} | "
                         f"{100 * np.mean(i >= 8):.1f} % ({int((i >= 8).sum())}) |")
    if not args.no_true_pairs:
        lines += ["", "## True pairs: RANSAC (3 px) AUC, percent", "", __doc__.split("\n\n")[2].replace("\n", " "), "",
                  "| pairs | pipeline | AUC@1 | AUC@3 | AUC@5 |", "|---|---|---:|---:|---:|"]
        for set_name, by_pipe in true_auc(pipes, args.data, args.sequences, args.images).items():
            for name, aucs in by_pipe.items():
                lines.append(f"| {set_name} | {name} | " + " | ".join(f"{a:.2f}" for a in aucs) + " |")
    ex = first.extractor
    lines += ["", f"{ex.features.upper()}, up to {ex.max_keypoints} keypoints at contrast threshold {ex.contrast_threshold:g}, longer side "
                  f"at most {ex.resize} px; 1 torch thread; "
                  f"{time.perf_counter() - start:.0f} s."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
