"""The graph network judging the candidates of simulated views with the copies of one place
collapsed: of the candidates whose two keypoints fall in the same 2-px cells of both images (one
place of each image found on several views), only the most similar is kept before the network.

The pipeline matches the rounds by FGINN (``Pipeline.match_views``); this swaps in the network on
collapsed candidates and runs, unchanged, either ``benchmarks.view_matching`` (``pairs``: accuracy
on extreme viewpoints against FGINN) or ``benchmarks.unrelated`` (``unrelated``: the pipeline's
rounds judged so, on photographs that do not overlap)::

    python -m benchmarks.view_copies pairs --data ../shared/data/coco/val --methods default --out OUT
    python -m benchmarks.view_copies unrelated --data ../shared/data/coco/val --sequences ../shared/data/real-pairs \\
        --methods default --views auto --no-true-pairs --out OUT.md
"""
from __future__ import annotations

import sys

import numpy as np

import pygmatch.matching.candidate_graph as cg
from pygmatch.pipeline import Pipeline

CELL_PX = 2.0
VIEW_CANDIDATES = cg.view_candidates  # the library's, which main replaces by collapsed_candidates


def collapsed_candidates(a0, a1):
    """``view_candidates`` with one candidate per pair of ``CELL_PX`` cells (the smallest descriptor distance)."""
    cand, feats = VIEW_CANDIDATES(a0, a1)
    if len(cand):
        cells = np.concatenate([np.floor(a0.keypoints.xy[cand[:, 0]] / CELL_PX), np.floor(a1.keypoints.xy[cand[:, 1]] / CELL_PX)], 1)
        order = np.argsort(feats[:, 0], kind="stable")
        _, first = np.unique(cells[order], axis=0, return_index=True)
        keep = np.sort(order[first])
        cand, feats = cand[keep], feats[keep]
    return cand, feats


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("pairs", "unrelated"):
        raise SystemExit("usage: python -m benchmarks.view_copies pairs|unrelated ARGS (those of benchmarks.view_matching / benchmarks.unrelated)")
    cg.view_candidates = collapsed_candidates  # view_candidate_graph reads it at each call
    if argv[0] == "unrelated":
        from benchmarks.unrelated import main as run  # noqa: PLC0415
        Pipeline.match_views = lambda self, a0, a1, size0, size1: self.matcher.match_views(a0, a1, size0, size1)
    else:
        from benchmarks.view_matching import main as run  # noqa: PLC0415
    run(argv[1:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
