"""Classical matching on descriptors: mutual nearest neighbour, with or without Lowe's ratio test."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import PygmatchError
from ..data.features import Keypoints
from .similarity import mutual_rows, nearest_two


def nearest_neighbor_match(desc0: np.ndarray, desc1: np.ndarray, ratio: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours in L2 distance (of unit descriptors: d² = 2 − 2·similarity); with
    ``ratio``, both directions must also pass Lowe's test ``d1 < ratio · d2`` (a keypoint with a
    single candidate passes). Returns ``(matches (K, 2) int64, scores (K,) float32)``, the score
    being ``1 − d²/4`` (1 for identical unit descriptors, 0 for opposite ones). Where several
    keypoints of image 0 are equally near their common nearest, the first is its mutual one.

    The distances are read off each descriptor's two most similar in the other image, both ways
    (``similarity.nearest_two``), never off the whole distance matrix."""
    n, m = len(desc0), len(desc1)
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    best0, order0, best1 = (t.numpy() for t in nearest_two(desc0, desc1))
    dist0, dist1 = np.maximum(2.0 - 2.0 * best0, 0.0), np.maximum(2.0 - 2.0 * best1, 0.0)  # (n, 2), (m, 2); a missing second: inf
    i = mutual_rows(best0, order0, best1)
    j = order0[i, 0]
    if ratio is not None:
        passed = (dist0[i, 0] < ratio**2 * dist0[i, 1]) & (dist1[j, 0] < ratio**2 * dist1[j, 1])
        i, j = i[passed], j[passed]
    return np.stack([i, j], 1).astype(np.int64), (1.0 - dist0[i, 0] / 4.0).astype(np.float32)


RATIO = 0.8  # Lowe's ratio of the ``nn-ratio`` method
FGINN_RADIUS = 10.0  # px: nearer neighbours than this to the nearest one are taken as the same point


def fginn_nearest(a: np.ndarray, b: np.ndarray, xy_b: np.ndarray, radius: float = FGINN_RADIUS, candidates: int = 10,
                  chunk: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nearest (n,) int64, distance² (n,), second distance² (n,))`` of each descriptor of ``a``
    among those of ``b``: its nearest, and the *first geometrically inconsistent* neighbour, the
    nearest one more than ``radius`` px (positions ``xy_b``) from the nearest (among the
    ``candidates`` nearest; none such: the last of them; a single descriptor in ``b``: infinitely
    far). The similarity is computed ``chunk`` rows at a time."""
    k = min(candidates, len(b))
    tb = torch.from_numpy(np.ascontiguousarray(b, np.float32))
    best, order = [], []
    for start in range(0, len(a), chunk):
        sim = torch.from_numpy(np.ascontiguousarray(a[start:start + chunk], np.float32)) @ tb.T
        top = sim.topk(k, dim=1)
        best.append(top.values.numpy()), order.append(top.indices.numpy())
    d2 = np.maximum(2.0 - 2.0 * np.concatenate(best), 0.0)
    order = np.concatenate(order)
    if k < 2:
        return order[:, 0], d2[:, 0], np.full(len(a), np.inf)
    xy_b = np.asarray(xy_b, np.float64)
    far = np.linalg.norm(xy_b[order[:, 1:]] - xy_b[order[:, :1]], axis=2) > radius
    second = np.where(far.any(1), far.argmax(1) + 1, k - 1)
    return order[:, 0], d2[:, 0], d2[np.arange(len(a)), second]


def fginn_match(desc0: np.ndarray, desc1: np.ndarray, xy0: np.ndarray, xy1: np.ndarray, ratio: float = RATIO,
                radius: float = FGINN_RADIUS, candidates: int = 10, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours that pass the ratio test against the *first geometrically
    inconsistent* nearest neighbour (Mishkin, Matas and Perdoch 2015), both ways
    (``fginn_nearest``). Keypoints found on several synthesised views of one place of an image
    have near-equal descriptors, which Lowe's test would take for an ambiguity. Same return as
    ``nearest_neighbor_match``."""
    n, m = len(desc0), len(desc1)
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    nn0, d0, second0 = fginn_nearest(desc0, desc1, xy1, radius, candidates, chunk)
    nn1, d1, second1 = fginn_nearest(desc1, desc0, xy0, radius, candidates, chunk)
    pass0, pass1 = d0 < ratio**2 * second0, d1 < ratio**2 * second1
    i = np.nonzero((nn1[nn0] == np.arange(n)) & pass0 & pass1[nn0])[0]
    return np.stack([i, nn0[i]], 1).astype(np.int64), (1.0 - d0[i] / 4.0).astype(np.float32)


def match_nn(kp0: Keypoints, kp1: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of two keypoint sets (the ``nn`` method)."""
    return nearest_neighbor_match(kp0.descriptors, kp1.descriptors)


def match_nn_ratio(kp0: Keypoints, kp1: Keypoints, ratio: float = RATIO) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours that pass Lowe's ratio test both ways (the ``nn-ratio`` method)."""
    return nearest_neighbor_match(kp0.descriptors, kp1.descriptors, ratio=ratio)


class NearestNeighbor:
    """A matching stage: mutual nearest neighbours of the descriptors, with ``ratio`` also Lowe's
    test both ways (``nearest_neighbor_match``). ``match(kp0, kp1, size0, size1)`` as every stage."""

    def __init__(self, ratio: float | None = None):
        if ratio is not None and not 0 < ratio <= 1:
            raise PygmatchError(f"ratio must be in (0, 1] (or None: no ratio test), got {ratio!r}")
        self.ratio = ratio

    def match(self, kp0: Keypoints, kp1: Keypoints, size0=None, size1=None) -> tuple[np.ndarray, np.ndarray]:
        """``(matches (K, 2) int64, scores (K,) float32)``; the image sizes are not needed."""
        return nearest_neighbor_match(kp0.descriptors, kp1.descriptors, self.ratio)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio})"
