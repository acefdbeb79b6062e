"""Match quality and homography accuracy: one module for training validation and ``eval.coco``."""
from __future__ import annotations

import math

import numpy as np

from ..data.geometry import corner_error, warp_points
from ..data.homography import estimate_homography, weighted_dlt  # noqa: F401 (weighted_dlt: re-exported)

AUC_THRESHOLDS = (1, 3, 5, 10)


def pair_metrics(
    matches: np.ndarray,
    scores: np.ndarray,
    xy0: np.ndarray,
    xy1: np.ndarray,
    gt_matches0: np.ndarray,
    H_0to1: np.ndarray,
    size: tuple[int, int],
    correct_px: float = 3.0,
    points1: np.ndarray | None = None,
    estimator: str = "opencv",
) -> dict:
    """Precision (< ``correct_px`` and < 1 px reprojection error under the true ``H_0to1``), recall
    and corner errors (RANSAC and weighted DLT) of one pair's matches.

    ``points1`` (K, 2): the matches' image-1 positions after a refinement (default: the matched
    keypoints' own); errors, precisions and the homographies use them, recall the indices.
    ``estimator``: the RANSAC of ``pygmatch.data.homography`` (``opencv`` or ``poselib``).

    ``size`` is image 0's ``(width, height)``: the corner error is measured on image 0's own
    corners, in image-1 pixels, so the two images may have different sizes."""
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    pts0 = xy0[matches[:, 0]]
    pts1 = xy1[matches[:, 1]] if points1 is None else np.asarray(points1, np.float64).reshape(-1, 2)
    err = np.linalg.norm(warp_points(pts0, H_0to1) - pts1, axis=1) if len(matches) else np.zeros(0)
    n_gt = int((gt_matches0 >= 0).sum())
    recovered = int((gt_matches0[matches[:, 0]] == matches[:, 1]).sum()) if len(matches) else 0
    return {
        "matches": len(matches),
        "precision": float((err < correct_px).mean()) if len(matches) else math.nan,
        "precision@1": float((err < 1.0).mean()) if len(matches) else math.nan,
        "recall": recovered / n_gt if n_gt else math.nan,
        "ransac_error": corner_error(estimate_homography(pts0, pts1, "ransac", estimator=estimator), H_0to1, size),
        "dlt_error": corner_error(estimate_homography(pts0, pts1, "dlt", weights=scores), H_0to1, size),
    }


def error_auc(errors, thresholds=AUC_THRESHOLDS) -> list[float]:
    """Area under the cumulative error curve up to each threshold, divided by it (SuperGlue /
    glue-factory). Infinite errors (failed estimates) count as misses."""
    errors = np.sort(np.asarray(errors, np.float64))
    if len(errors) == 0:
        return [math.nan for _ in thresholds]
    recall = np.arange(1, len(errors) + 1) / len(errors)
    errors = np.r_[0.0, errors]
    recall = np.r_[0.0, recall]
    out = []
    for t in thresholds:
        last = np.searchsorted(errors, t)
        r = np.r_[recall[:last], recall[last - 1]]
        e = np.r_[errors[:last], t]
        out.append(float(np.trapezoid(r, x=e) / t))
    return out


def auc_difference(errors_a, errors_b, threshold: float = 3.0, resamples: int = 2000, level: float = 0.9,
                   seed: int = 0) -> tuple[float, float, float]:
    """AUC@threshold of A minus that of B on the same pairs, in percentage points, with a paired
    bootstrap interval (pairs resampled with replacement, the same draw for both):
    ``(difference, low, high)``.
    An interval that contains 0 says the evaluation set cannot tell the two apart."""
    a, b = np.asarray(errors_a, np.float64), np.asarray(errors_b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need per-pair errors of the same pairs, got shapes {a.shape} and {b.shape}")
    def diff(idx):
        return 100 * (error_auc(a[idx], (threshold,))[0] - error_auc(b[idx], (threshold,))[0])

    draws = [diff(i) for i in np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))]
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return diff(np.arange(len(a))), float(low), float(high)


def summarize(per_pair: list[dict], thresholds=AUC_THRESHOLDS) -> dict:
    """Aggregate pair metrics; precision and recall are averaged over pairs where they are
    defined (≥ 1 match, ≥ 1 ground-truth match). Percentages, as in the papers."""
    def nanmean(key):
        vals = np.array([p[key] for p in per_pair], np.float64)
        vals = vals[np.isfinite(vals)]
        return float(vals.mean()) if len(vals) else math.nan

    out = {"precision": 100 * nanmean("precision"), "precision@1": 100 * nanmean("precision@1"), "recall": 100 * nanmean("recall")}
    for prefix, key in (("", "ransac_error"), ("dlt_", "dlt_error")):
        for t, a in zip(thresholds, error_auc([p[key] for p in per_pair], thresholds)):
            out[f"{prefix}auc@{t}"] = 100 * a
    out["matches"] = nanmean("matches")
    out["pairs"] = len(per_pair)
    return out
