"""Classical matching on descriptors: mutual nearest neighbour, with or without Lowe's ratio test."""
from __future__ import annotations

import numpy as np

from ..errors import PygmatchError
from ..data.features import Keypoints


def nearest_neighbor_match(desc0: np.ndarray, desc1: np.ndarray, ratio: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours in L2 distance; with ``ratio``, both directions must also pass
    Lowe's test ``d1 < ratio · d2``. Returns ``(matches (K, 2) int64, scores (K,) float32)``,
    the score being ``1 − d²/4`` (1 for identical unit descriptors, 0 for opposite ones)."""
    n, m = len(desc0), len(desc1)
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    dist2 = np.maximum(2.0 - 2.0 * (desc0 @ desc1.T), 0.0)
    nn0, nn1 = dist2.argmin(1), dist2.argmin(0)
    keep = nn1[nn0] == np.arange(n)
    if ratio is not None:
        for axis, nn, size in ((1, nn0, m), (0, nn1, n)):
            if size < 2:
                continue  # a single candidate has no second neighbour to compare against
            two = np.partition(dist2, 1, axis=axis)
            first, second = (two[:, 0], two[:, 1]) if axis == 1 else (two[0], two[1])
            passed = first < (ratio**2) * second
            keep &= passed if axis == 1 else passed[nn0]
    i = np.nonzero(keep)[0]
    matches = np.stack([i, nn0[i]], 1).astype(np.int64)
    scores = (1.0 - dist2[i, nn0[i]] / 4.0).astype(np.float32)
    return matches, scores


RATIO = 0.8  # Lowe's ratio of the ``nn-ratio`` method


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
