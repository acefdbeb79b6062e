"""Ground-truth correspondences between two keypoint sets related by a known homography."""
from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from .geometry import warp_points

UNMATCHED = -1  # the keypoint has no partner: it goes to the dustbin
IGNORE = -2  # ambiguous (nearest reprojection between the two thresholds): not supervised


def reprojection_error(xy0: np.ndarray, xy1: np.ndarray, H_0to1: np.ndarray) -> np.ndarray:
    """(N, M) matrix of ‖H·x_i − x_j‖ in image-1 pixels."""
    if len(xy0) == 0 or len(xy1) == 0:
        return np.zeros((len(xy0), len(xy1)))
    proj = warp_points(xy0, H_0to1)
    proj[~np.isfinite(proj)] = 1e9
    return cdist(proj, np.asarray(xy1, np.float64))


def ground_truth_matches(
    xy0: np.ndarray, xy1: np.ndarray, H_0to1: np.ndarray, match_px: float = 3.0, unmatched_px: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(matches0, matches1)``: for each keypoint the index of its partner, ``UNMATCHED`` or ``IGNORE``.

    i and j match when they are mutual nearest neighbours in reprojection error and the error is
    below ``match_px``; a keypoint whose nearest reprojection is farther than ``unmatched_px`` is
    unmatched; anything else is ignored.
    """
    if match_px > unmatched_px:
        raise ValueError(f"match_px ({match_px}) must not exceed unmatched_px ({unmatched_px})")
    n, m = len(xy0), len(xy1)
    matches0 = np.full(n, UNMATCHED, np.int64)
    matches1 = np.full(m, UNMATCHED, np.int64)
    if n == 0 or m == 0:
        return matches0, matches1
    err = reprojection_error(xy0, xy1, H_0to1)
    nn0, nn1 = err.argmin(1), err.argmin(0)
    min0, min1 = err[np.arange(n), nn0], err[nn1, np.arange(m)]
    matches0[min0 <= unmatched_px] = IGNORE
    matches1[min1 <= unmatched_px] = IGNORE
    i = np.arange(n)
    mutual = (nn1[nn0] == i) & (min0 < match_px)
    matches0[mutual] = nn0[mutual]
    matches1[nn0[mutual]] = i[mutual]
    return matches0, matches1
