"""Homography estimation from matched points: RANSAC (OpenCV's, or PoseLib's LO-RANSAC with a
non-linear refinement of the inliers), or a (weighted) direct linear transform. Used by
``MatchResult.homography()`` and by the evaluation's metrics.

``estimator="opencv"`` (the default, so earlier numbers stay comparable): ``cv2.findHomography``
with RANSAC, 2000 iterations at most, confidence 0.9999. ``estimator="poselib"``: PoseLib's
``estimate_homography`` (locally optimised RANSAC, then a robust least-squares refinement), the
estimator glue-factory reports beside OpenCV's; the optional dependency ``poselib``
(``pip install poselib``, or the ``sfm`` extra)."""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import PygmatchError
from .geometry import warp_points


def weighted_dlt(pts0: np.ndarray, pts1: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | None:
    """Direct linear transform with Hartley normalisation; each correspondence's two equations
    are scaled by ``sqrt(weight)``. Returns None with fewer than 4 points or a degenerate system."""
    pts0, pts1 = np.asarray(pts0, np.float64), np.asarray(pts1, np.float64)
    if len(pts0) < 4:
        return None
    w = np.ones(len(pts0)) if weights is None else np.clip(np.asarray(weights, np.float64), 0, None)
    if (w > 0).sum() < 4:
        return None

    def normaliser(p):
        c = np.average(p, axis=0, weights=w)
        d = np.average(np.linalg.norm(p - c, axis=1), weights=w)
        s = math.sqrt(2) / d if d > 1e-12 else 1.0
        return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])

    T0, T1 = normaliser(pts0), normaliser(pts1)
    p0 = warp_points(pts0, T0)
    p1 = warp_points(pts1, T1)
    x, y, u, v = p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]
    z, o = np.zeros_like(x), np.ones_like(x)
    A = np.concatenate(
        [
            np.stack([-x, -y, -o, z, z, z, u * x, u * y, u], 1),
            np.stack([z, z, z, -x, -y, -o, v * x, v * y, v], 1),
        ]
    ) * np.sqrt(np.concatenate([w, w]))[:, None]
    try:
        _, s, vt = np.linalg.svd(A)
    except np.linalg.LinAlgError:
        return None
    H = np.linalg.inv(T1) @ vt[-1].reshape(3, 3) @ T0
    if abs(H[2, 2]) < 1e-12 or not np.all(np.isfinite(H)):
        return None
    return H / H[2, 2]


ESTIMATORS = ("opencv", "poselib")
RANSAC_ITERATIONS, RANSAC_CONFIDENCE = 2000, 0.9999  # both estimators' limits


def poselib_module():
    """The ``poselib`` module, or one line saying how to install it."""
    try:
        import poselib  # noqa: PLC0415
    except ImportError:
        raise PygmatchError("estimator 'poselib' needs PoseLib: pip install poselib (or pip install -e \".[sfm]\")") from None
    return poselib


def ransac_poselib(pts0: np.ndarray, pts1: np.ndarray, ransac_px: float = 3.0, seed: int = 0) -> np.ndarray | None:
    """PoseLib's LO-RANSAC homography (``ransac_px`` reprojection threshold in image 1, fixed
    ``seed``), refined on its inliers; None when it finds no model."""
    poselib = poselib_module()
    options = {"max_reproj_error": float(ransac_px), "max_iterations": RANSAC_ITERATIONS, "success_prob": RANSAC_CONFIDENCE, "seed": seed}
    H, info = poselib.estimate_homography(np.asarray(pts0, np.float64).reshape(-1, 2), np.asarray(pts1, np.float64).reshape(-1, 2), options, {})
    H = np.asarray(H, np.float64)
    if not info.get("num_inliers", 0) or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None
    return H / H[2, 2]


def check_estimator(estimator: str, what: str = "homography") -> None:
    """An unknown estimator, or PoseLib asked for but not installed, is one line (before any work)."""
    if estimator not in ESTIMATORS:
        raise PygmatchError(f"unknown {what} estimator {estimator!r}: choose from {', '.join(ESTIMATORS)}")
    if estimator == "poselib":
        poselib_module()


def estimate_homography(pts0: np.ndarray, pts1: np.ndarray, method: str = "ransac", weights: np.ndarray | None = None,
                        ransac_px: float = 3.0, estimator: str = "opencv") -> np.ndarray | None:
    """Homography from matched points by RANSAC (``estimator``: ``"opencv"`` or ``"poselib"``,
    see the module's docstring) or by (weighted) DLT (``method="dlt"``); None if impossible."""
    if method == "ransac" or estimator not in ESTIMATORS:
        check_estimator(estimator)  # a missing PoseLib is an error even when a pair has too few matches
    if len(pts0) < 4:
        return None
    if method == "dlt":
        return weighted_dlt(pts0, pts1, weights)
    if estimator == "poselib":
        return ransac_poselib(pts0, pts1, ransac_px)
    H, _ = cv2.findHomography(np.float32(pts0), np.float32(pts1), cv2.RANSAC, ransac_px, maxIters=RANSAC_ITERATIONS, confidence=RANSAC_CONFIDENCE)
    return H
