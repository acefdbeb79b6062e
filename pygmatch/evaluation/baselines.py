"""Classical matchers on descriptors: mutual nearest neighbour, with or without Lowe's ratio test;
and the oracle, the ground-truth matches of the true homography (a ceiling, not a matcher)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import PygmatchError
from ..data.features import Keypoints
from ..data.ground_truth import ground_truth_matches


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


def match_nn(kp0: Keypoints, kp1: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    return nearest_neighbor_match(kp0.descriptors, kp1.descriptors)


def match_nn_ratio(kp0: Keypoints, kp1: Keypoints, ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    return nearest_neighbor_match(kp0.descriptors, kp1.descriptors, ratio=ratio)


BASELINES = {"nn": match_nn, "nn-ratio": match_nn_ratio}


def oracle_match(xy0: np.ndarray, xy1: np.ndarray, H_0to1: np.ndarray, px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The ground-truth matches at ``px`` pixels: mutual nearest neighbours in reprojection error
    ‖H·x_i − x_j‖ below ``px`` (``pygmatch.data.ground_truth``, the dustbin at ``max(px, 5)``), all
    scored 1. It reads the true homography, so it is a ceiling for what the keypoints allow."""
    m0, _ = ground_truth_matches(xy0, xy1, H_0to1, match_px=px, unmatched_px=max(px, 5.0))
    i = np.nonzero(m0 >= 0)[0]
    return np.stack([i, m0[i]], 1).astype(np.int64).reshape(-1, 2), np.ones(len(i), np.float32)


def parse_oracle(name: str) -> float:
    """The threshold of a method name ``oracle@PX`` (PX a number > 0)."""
    try:
        px = float(name.partition("@")[2])
    except ValueError:
        px = math.nan
    if not (math.isfinite(px) and px > 0):
        raise PygmatchError(f"bad method {name!r}: expected oracle@PX with PX a number of pixels > 0, e.g. oracle@3")
    return px
