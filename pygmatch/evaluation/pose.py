"""Relative-pose evaluation on real pairs with known cameras (``python -m eval.pose``).

For each pair of a scene (``pygmatch.data.scenes``) and each pipeline: match (the returned, refined
positions in original pixels), estimate the relative pose from the essential matrix
(``pygmatch.data.epipolar.estimate_relative_pose``: RANSAC on normalised coordinates with the
threshold of ``ransac_px`` pixels divided by the mean focal length of the pair; OpenCV's
``findEssentialMat`` + ``recoverPose``, or PoseLib's ``estimate_relative_pose``), and score the pose error: the larger of the rotation
error (angle of R_estᵀ R_true) and the angle between the estimated and true translation directions
(the smaller of it and 180° minus it: the essential matrix fixes t only up to sign), in degrees,
infinite when there is no estimate (fewer than 5 matches, RANSAC failed). AUC@5/10/20° of these
errors (``metrics.error_auc``): the SuperGlue / LightGlue / glue-factory protocol of
MegaDepth-1500 / ScanNet-1500.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS
from ..data.epipolar import estimate_relative_pose, rotation_angle
from ..data.homography import check_estimator
from ..data.scenes import Scene, check_image_size, model_folder
from ..errors import PygmatchError
from ..pipeline import DEFAULT_RESIZE, Pipeline
from .evaluate import load_pipelines
from .metrics import auc_difference, error_auc

POSE_THRESHOLDS = (5, 10, 20)
RANSAC_PX = 1.0
# The pairs grouped by the angle of their true relative rotation (degrees): one measure of how far
# apart the two views are (a pair can also be far apart by translation or scale at a small angle).
ROTATION_EDGES = (10, 30)


def rotation_group(rotation: float, edges=ROTATION_EDGES) -> str:
    """The label of the group of a true relative rotation in degrees: "< 10°", "10–30°", "≥ 30°"."""
    i = int(np.searchsorted(edges, rotation, side="right"))
    return f"< {edges[0]:g}°" if i == 0 else f"≥ {edges[-1]:g}°" if i == len(edges) else f"{edges[i - 1]:g}–{edges[i]:g}°"


def load_pose_pipelines(names: list[str], features: str | None = None, max_keypoints: int = DEFAULT_MAX_KEYPOINTS, threads: int | None = 1,
                        resize: int | None = DEFAULT_RESIZE, views: str = "plain", contrast_threshold: float = DEFAULT_CONTRAST_THRESHOLD,
                        selection: str | None = None, **matcher_options) -> dict[str, Pipeline]:
    """``{name: Pipeline}``: keypoints found on images downscaled to ``resize`` px on the longer side
    (the matched positions come back in original pixels), the anchors (``aliked+lightglue``, ...:
    ``pygmatch.evaluation.anchors``, the ``anchors`` extra) included. Oracles are refused: they need a
    homography."""
    for name in names:
        if "oracle@" in name:
            raise PygmatchError(f"{name}: oracles read a true homography; a relative-pose pair has none (choose other methods)")
    return load_pipelines(names, features, max_keypoints, threads, resize, views, contrast_threshold, selection, **matcher_options)


def rotation_error(R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Angle of R_estᵀ R_true, degrees."""
    return rotation_angle(R_est.T @ R_true)


def translation_error(t_est: np.ndarray, t_true: np.ndarray) -> float:
    """Angle between translation directions, degrees, up to sign (min(e, 180 − e)); 0 when the
    true translation is zero (a pure rotation has no direction to get wrong)."""
    n_est, n_true = np.linalg.norm(t_est), np.linalg.norm(t_true)
    if n_true < 1e-12:
        return 0.0
    if n_est < 1e-12:
        return 90.0
    e = math.degrees(math.acos(float(np.clip(np.dot(t_est, t_true) / (n_est * n_true), -1.0, 1.0))))
    return min(e, 180.0 - e)


def pose_error(R_est, t_est, R_true, t_true) -> float:
    """max(rotation error, translation-direction error), degrees."""
    return max(rotation_error(R_est, R_true), translation_error(np.ravel(t_est), np.ravel(t_true)))


def column(estimator: str, key: str) -> str:
    """The name of an estimator's metric (or error array): OpenCV's unqualified (``auc@5``,
    ``default``), the others prefixed (``poselib/auc@5``, ``poselib/default``)."""
    return key if estimator == "opencv" else f"{estimator}/{key}"


@dataclass
class PoseResult:
    """``errors``: the pose error of every pair (degrees, in ``pairs`` order) per method and
    estimator, keyed ``column(estimator, method)``; ``per_pair`` dicts per method (scene, names,
    matches, ms, true rotation, and per estimator error and inliers); ``summary`` overall, ``by_scene``
    and ``by_rotation``."""

    pairs: list[tuple[str, str, str]]  # (scene, name0, name1)
    errors: dict[str, np.ndarray]
    per_pair: dict[str, list[dict]]
    summary: dict[str, dict] = field(default_factory=dict)
    by_scene: dict[str, dict[str, dict]] = field(default_factory=dict)
    by_rotation: dict[str, dict[str, dict]] = field(default_factory=dict)  # ``rotation_group`` of the true rotation, smallest first
    extract_ms: dict[str, float] = field(default_factory=dict)  # per keypoint kind (sift, aliked, ...): median ms per image
    estimators: tuple[str, ...] = ("opencv",)


def summarize_pose(rows: list[dict], thresholds=POSE_THRESHOLDS, estimators=("opencv",)) -> dict:
    """Per estimator AUC (%) at each threshold, mean RANSAC inliers and failures (keys
    ``column(estimator, ...)``); mean matches, pairs and median ms per pair."""
    out = {}
    for e in estimators:
        errors = [r[column(e, "error")] for r in rows]
        out.update({column(e, f"auc@{t}"): 100 * a for t, a in zip(thresholds, error_auc(errors, thresholds))})
        out[column(e, "inliers")] = float(np.mean([r[column(e, "inliers")] for r in rows])) if rows else math.nan
        out[column(e, "failed")] = sum(not math.isfinite(x) for x in errors)
    out["matches"] = float(np.mean([r["matches"] for r in rows])) if rows else math.nan
    out["pairs"] = len(rows)
    out["ms_per_pair"] = float(np.median([r["ms"] for r in rows])) if rows else math.nan
    return out


def evaluate_pose(scenes: list[Scene], methods: dict[str, Pipeline], ransac_px: float = RANSAC_PX, progress=None,
                  estimators: tuple[str, ...] = ("opencv",)) -> PoseResult:
    """Every method on every pair of every scene, the pose estimated from the same matches by each of
    ``estimators`` (``opencv``, ``poselib``: ``pygmatch.data.epipolar``). Each image's keypoints are
    extracted once per scene (per extractor setting) and matched by every method;
    ``progress(done, total)`` after each pair."""
    estimators = tuple(estimators)
    for e in estimators:
        check_estimator(e, "relative-pose")
    pairs = [(scene, a, b) for scene in scenes for a, b in scene.pairs]
    per_pair: dict[str, list[dict]] = {name: [] for name in methods}
    extract_ms: dict[str, list[float]] = {}
    done = 0
    for scene in scenes:
        cache: dict = {}

        def features(pipe: Pipeline, name: str):
            e = pipe.extractor
            key = (e.features, e.max_keypoints, e.resize, getattr(e, "contrast_threshold", None), getattr(e, "selection", None), name)
            if key not in cache:
                start = time.perf_counter()
                cache[key] = pipe.extract(scene.path(name))
                extract_ms.setdefault(e.features, []).append(1000 * (time.perf_counter() - start))
                size = cache[key].original_size
                if name in scene.images and size is not None:  # a pair file gives no image size
                    check_image_size(scene.path(name), size, scene.images[name].camera, model_folder(scene.folder))
            return cache[key]

        for a, b in scene.pairs:
            truth = scene.truth(a, b)
            for method, pipe in methods.items():
                f0, f1 = features(pipe, a), features(pipe, b)
                start = time.perf_counter()
                res = pipe.match(f0, f1)
                ms = 1000 * (time.perf_counter() - start)
                row = {"scene": scene.name, "image0": a, "image1": b, "rotation": rotation_angle(truth.R), "matches": len(res.matches), "ms": ms}
                for e in estimators:
                    est = estimate_relative_pose(res.points0, res.points1, truth.K0, truth.K1, ransac_px, e)
                    row[column(e, "error")] = math.inf if est is None else pose_error(est.R, est.t, truth.R, truth.t)
                    row[column(e, "inliers")] = 0 if est is None else est.num_inliers
                per_pair[method].append(row)
            done += 1
            if progress is not None:
                progress(done, len(pairs))
    errors = {column(e, m): np.array([r[column(e, "error")] for r in rows], np.float64) for e in estimators for m, rows in per_pair.items()}
    result = PoseResult([(s.name, a, b) for s, a, b in pairs], errors, per_pair,
                        extract_ms={k: float(np.median(v)) for k, v in extract_ms.items()}, estimators=estimators)
    def summarize_where(keep) -> dict:
        return {m: summarize_pose([r for r in rows if keep(r)], estimators=estimators) for m, rows in per_pair.items()}

    result.summary = summarize_where(lambda r: True)
    result.by_scene = {scene.name: summarize_where(lambda r, name=scene.name: r["scene"] == name) for scene in scenes}
    present = {rotation_group(r["rotation"]) for rows in per_pair.values() for r in rows}
    result.by_rotation = {group: summarize_where(lambda r, group=group: rotation_group(r["rotation"]) == group)
                          for group in (rotation_group(lowest) for lowest in (0, *ROTATION_EDGES)) if group in present}
    return result


def paired_differences(result: PoseResult, reference: str, thresholds=POSE_THRESHOLDS, level: float = 0.9,
                       resamples: int = 2000) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{other method: {column(estimator, "auc@T"): (reference minus other, low, high)}}``: for each
    of the result's estimators, a paired bootstrap over the same pairs (``metrics.auc_difference``),
    percentage points."""
    errors = result.errors
    return {other: {column(e, f"auc@{t}"): auc_difference(errors[column(e, reference)], errors[column(e, other)], float(t),
                                                          resamples=resamples, level=level)
                    for e in result.estimators for t in thresholds}
            for other in result.per_pair if other != reference}
