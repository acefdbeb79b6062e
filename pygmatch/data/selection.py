"""Which keypoints fill a budget: the strongest, or the strongest spread over the image.

A detector's strongest responses cluster on a few textured regions (foliage, lettering, a
building's ornament); a small budget spent there leaves the rest of the image without keypoints,
and two photographs from different viewpoints share few of them. Adaptive non-maximal suppression
(ANMS; Brown, Szeliski and Winder, "Multi-image matching using multi-scale oriented patches",
CVPR 2005) keeps, instead, the keypoints that are strongest within the largest neighbourhood: each
keypoint's suppression radius is its distance to the nearest stronger keypoint, and the budget
goes to the largest radii, so the kept keypoints are both strong and spread out.

``spread`` computes the radii exactly: a k-d tree gives each keypoint's nearest neighbours, which
hold a stronger one for all but the local maxima; those few are measured against every stronger
keypoint.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

# "strongest": the detector's largest responses; "spread": ANMS among the strongest candidates.
SELECTIONS = ("strongest", "spread")
# Neighbours the k-d tree returns per keypoint before the exact fallback; a speed setting only.
_NEIGHBOURS = 16


def strongest(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, largest first (ties in index order)."""
    return np.argsort(-np.asarray(score), kind="stable")[:n]


def strength_rank(score: np.ndarray) -> np.ndarray:
    """(N,) each keypoint's place in ``strongest`` order: 0 for the strongest."""
    rank = np.empty(len(score), np.int64)
    rank[strongest(score, len(score))] = np.arange(len(score))
    return rank


def suppression_radii(xy: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(N,) distance from each keypoint to the nearest stronger one (inf for the strongest). Equal
    scores are ordered by index, so every keypoint but the first has a radius."""
    xy = np.asarray(xy, np.float64)
    n = len(xy)
    rank = strength_rank(score)
    by_rank = np.argsort(rank)
    radius = np.full(n, np.inf)
    if n < 2:
        return radius
    distance, neighbour = cKDTree(xy).query(xy, k=min(n, _NEIGHBOURS + 1))
    stronger = rank[neighbour] < rank[:, None]
    found = stronger.any(axis=1)
    radius[found] = distance[found, stronger[found].argmax(axis=1)]
    # Local maxima among their neighbours: few, and mostly strong, so few stronger keypoints to measure.
    for i in np.flatnonzero(~found & (rank > 0)):
        radius[i] = np.sqrt(((xy[by_rank[:rank[i]]] - xy[i]) ** 2).sum(axis=1).min())
    return radius


def spread(xy: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` keypoints by ANMS: the largest suppression radii first, equal radii by score."""
    return np.lexsort((strength_rank(score), -suppression_radii(xy, score)))[:n]
