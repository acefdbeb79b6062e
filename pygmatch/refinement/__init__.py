"""The refine stage: sub-pixel refinement of matched positions, after matching.

Why. SIFT keypoints of the two images are detected independently, so even a correct match is
typically 0.3–2 px off the true correspondence, and RANSAC's 3 px refit averages those errors into
the homography. Moving each match's image-1 position to where image 0's patch around it lands
raises RANSAC AUC@3 more than any matcher change measured in this project (for every matcher).

How (``PatchRefiner``, classical). For each match ``p0 -> p1``:

1. the linear part ``L`` of the affine motion around it is fitted to its neighbouring matches
   (``pygmatch.data.geometry.fit_local_motion``, robust to the wrong ones);
2. a template: image 0 sampled around ``p0`` through ``L⁻¹`` on a (2·half+1)² grid, so it looks as
   the patch should look in image 1;
3. a window: image 1 around ``p1``, ``search`` pixels wider on each side;
4. normalised cross-correlation of the template at every integer shift of the window, the best
   shift and a parabola through the peak for the sub-pixel part.

A match is left where it is when its patch is flat, its best correlation is below ``min_ncc``, the
peak lies on the search border, or its patches leave an image. ``LearnedRefiner`` (``learned.py``)
replaces step 4 by a small network trained on bank pairs, on the same patches.

Both leave a match exactly where it is when image 1 around ``p1`` holds the same pixels as image 0
around ``p0`` (``exact_matches``; two identical images, say): the match is already perfect, and
a sub-pixel peak estimate would only move it (the parabola through an asymmetric correlation
peak, the learned soft arg-max and the local motion's fit are each a little biased: on identical
photographs they moved perfect matches by 0.05 px on average and up to 0.9 px).

Inputs / outputs: ``refiner.refine(image0, image1, points0, points1)`` with two gray images (H, W) uint8
or float and the matched positions (K, 2) in pixels → refined ``points1`` (K, 2) float64. Positions
that are not finite, or ``points0`` and ``points1`` of different lengths, are one ``PygmatchError``.
"""
from __future__ import annotations

import functools
import os

from .learned import FORMAT, WEIGHTS, LearnedRefiner, RefinerConfig, standardize
from .ncc import PatchRefiner
from .patches import (NEIGHBOURS, PatchStage, as_image_tensor, check_points, exact_matches, local_linear_maps, match_patches,
                      normalized_cross_correlation, parabola_peak, sample_patches)

REFINEMENTS = ("refiner", "ncc")  # the names ``load_refiner`` (and eval's ``METHOD+NAME``) know


def load_refiner(name: str | os.PathLike) -> PatchStage:
    """A refiner (``refine(image0, image1, points0, points1) -> points1``) by name: ``"refiner"``
    (the shipped ``LearnedRefiner``), ``"ncc"`` (``PatchRefiner``), a refiner model file or a ``train.refiner`` run.
    Loaded once per name (a file: once per version of it on disk)."""
    name = str(name)
    version = os.stat(name).st_mtime_ns if name not in REFINEMENTS and os.path.exists(name) else None  # a run folder too
    return _load_refiner(name, version)


@functools.lru_cache(maxsize=8)
def _load_refiner(name: str, version: int | None):
    if name == "ncc":
        return PatchRefiner()
    return LearnedRefiner.load("default" if name == "refiner" else name)


__all__ = ["FORMAT", "WEIGHTS", "LearnedRefiner", "RefinerConfig", "standardize", "PatchRefiner", "NEIGHBOURS", "PatchStage", "as_image_tensor",
           "check_points", "exact_matches", "local_linear_maps", "match_patches", "normalized_cross_correlation", "parabola_peak",
           "sample_patches", "REFINEMENTS", "load_refiner"]
