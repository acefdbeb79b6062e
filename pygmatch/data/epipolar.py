"""Two-view geometry beyond homographies, from matched pixel positions: the fundamental matrix, and
with known intrinsics the essential matrix and relative pose. Used by ``MatchResult.fundamental()`` /
``MatchResult.pose()`` and by the relative-pose evaluation (``python -m eval.pose``).

Positions are pygmatch's (pixel centres at integers). Intrinsics K are in COLMAP's convention (the
first pixel's centre at (0.5, 0.5)), as ``pygmatch.data.scenes`` reads them: ``pixel_to_camera`` adds
0.5 before applying K⁻¹. The relative pose maps camera 0's coordinates to camera 1's,
x1 = R x0 + t, with |t| = 1 (an essential matrix fixes t only up to scale).

Two estimators (``estimator``), both with a threshold in pixels:

- ``"opencv"`` (the default): ``cv2.findFundamentalMat`` (RANSAC, confidence 0.9999, 2000 iterations
  at most, like the homography's); for the pose ``cv2.findEssentialMat`` by RANSAC on normalised
  coordinates with the threshold divided by the pair's mean focal length, confidence 0.99999, then
  ``cv2.recoverPose`` (of several essential matrices the one with the most inliers in front of both
  cameras).
- ``"poselib"``: PoseLib's LO-RANSAC with a non-linear refinement of the inliers,
  ``estimate_fundamental`` (Sampson error in pixels) and ``estimate_relative_pose`` on the same
  normalised coordinates and the same normalised threshold (what PoseLib does itself with pinhole
  cameras: it divides the pixel threshold by the mean focal length), same confidence; the optional
  dependency ``poselib`` (the ``sfm`` extra).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import PygmatchError
from .homography import RANSAC_CONFIDENCE, RANSAC_ITERATIONS, check_estimator, poselib_module

POSE_CONFIDENCE = 0.99999  # the essential matrix's RANSAC confidence (eval.pose's published numbers)
POSE_ITERATIONS = 10000  # PoseLib's default limit; OpenCV's findEssentialMat sets its own (1000)


@dataclass
class RelativePose:
    """Camera 1 relative to camera 0: ``R`` (3×3), ``t`` (3,) unit (x1 = R x0 + t), ``inliers`` (K,)
    bool: the matches consistent with it (OpenCV's: RANSAC inliers in front of both cameras), ``E``
    (3×3) the essential matrix [t]ₓR."""

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray
    E: np.ndarray

    @property
    def num_inliers(self) -> int:
        return int(self.inliers.sum())


def rotation_angle(R: np.ndarray) -> float:
    """The angle of a rotation matrix, degrees."""
    return math.degrees(math.acos(float(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def essential_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[t]ₓR: x1ᵀ E x0 = 0 for the normalised coordinates of a point seen by two cameras, x1 = R x0 + t."""
    t = np.asarray(t, np.float64).ravel()
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ R


def epipolar_distance(F: np.ndarray, xy0: np.ndarray, xy1: np.ndarray, pairwise: bool = False) -> np.ndarray:
    """The larger of the two point-to-epipolar-line distances, in pixels (x1 to the line F x0 in
    image 1, x0 to Fᵀ x1 in image 0): (K,) for matched points ``xy0``, ``xy1`` (K, 2), or with
    ``pairwise`` (N, M) for every point of ``xy0`` (N, 2) with every one of ``xy1`` (M, 2)."""
    X0, X1 = (np.c_[np.asarray(xy, np.float64).reshape(-1, 2), np.ones(len(xy))] for xy in (xy0, xy1))
    lines1, lines0 = X0 @ F.T, X1 @ F  # in image 1, in image 0
    residual = np.abs(lines1 @ X1.T) if pairwise else np.abs((lines1 * X1).sum(1))  # x1ᵀ F x0
    norm1 = np.maximum(np.linalg.norm(lines1[:, :2], axis=1), 1e-12)
    norm0 = np.maximum(np.linalg.norm(lines0[:, :2], axis=1), 1e-12)
    if pairwise:
        norm1, norm0 = norm1[:, None], norm0[None, :]
    return np.maximum(residual / norm1, residual / norm0)


def pixel_to_camera(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    """pygmatch positions (K, 2), pixel centres at integers, → normalised camera coordinates (K, 2):
    K⁻¹ applied to (x + 0.5, y + 0.5), COLMAP's pixel convention."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2) + 0.5
    h = np.linalg.solve(np.asarray(K, np.float64), np.c_[xy, np.ones(len(xy))].T).T
    return h[:, :2] / h[:, 2:]


def check_intrinsics(K, what: str = "K") -> np.ndarray:
    """``K`` as a 3×3 float64 array of an upper-triangular pinhole camera (positive focal lengths,
    last row 0 0 1), else a one-line error naming ``what``."""
    try:
        K = np.asarray(K, np.float64)
    except (TypeError, ValueError):
        raise PygmatchError(f"{what}: intrinsics must be a 3×3 matrix of numbers") from None
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise PygmatchError(f"{what}: intrinsics must be a finite 3×3 matrix, got shape {K.shape}")
    if not (K[0, 0] > 0 and K[1, 1] > 0) or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise PygmatchError(f"{what}: not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    return K


def _points(points0, points1) -> tuple[np.ndarray, np.ndarray]:
    p0 = np.asarray(points0, np.float64).reshape(-1, 2)
    p1 = np.asarray(points1, np.float64).reshape(-1, 2)
    if len(p0) != len(p1):
        raise PygmatchError(f"points0 and points1 must be matched positions of the same length, got {len(p0)} and {len(p1)}")
    return p0, p1


def _poselib_inliers(info: dict, n: int) -> np.ndarray:
    inliers = np.asarray(info.get("inliers", []), bool).reshape(-1)
    return inliers if len(inliers) == n else np.zeros(n, bool)


def estimate_fundamental(points0, points1, ransac_px: float = 1.0, estimator: str = "opencv",
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """``(F, inliers)``: the fundamental matrix (3×3, x1ᵀ F x0 = 0 in pixels, scaled to unit norm)
    by RANSAC at ``ransac_px`` pixels, and which matches are its inliers (K,) bool; None with fewer
    than 8 matches or no model."""
    check_estimator(estimator, "fundamental-matrix")
    p0, p1 = _points(points0, points1)
    if len(p0) < 8:
        return None
    if estimator == "poselib":
        options = {"max_epipolar_error": float(ransac_px), "max_iterations": RANSAC_ITERATIONS,
                   "success_prob": RANSAC_CONFIDENCE, "seed": seed}
        F, info = poselib_module().estimate_fundamental(p0, p1, options, {})
        F, inliers = np.asarray(F, np.float64), _poselib_inliers(info, len(p0))
        if not inliers.any():
            return None
    else:
        cv2.setRNGSeed(seed)
        F, mask = cv2.findFundamentalMat(p0, p1, cv2.FM_RANSAC, float(ransac_px), RANSAC_CONFIDENCE, RANSAC_ITERATIONS)
        if F is None or mask is None or F.shape != (3, 3):
            return None
        inliers = mask.ravel().astype(bool)
    if not np.all(np.isfinite(F)) or np.linalg.norm(F) < 1e-12:
        return None
    return F / np.linalg.norm(F), inliers


def estimate_relative_pose(points0, points1, K0, K1, ransac_px: float = 1.0, estimator: str = "opencv",
                           confidence: float = POSE_CONFIDENCE, seed: int = 0) -> RelativePose | None:
    """The pose of camera 1 relative to camera 0 (``RelativePose``) from matched pixel positions and
    the two cameras' intrinsics, by RANSAC on the essential matrix at ``ransac_px`` pixels (see the
    module's docstring); None with fewer than 5 matches or no model."""
    check_estimator(estimator, "relative-pose")
    K0, K1 = check_intrinsics(K0, "K0"), check_intrinsics(K1, "K1")
    p0, p1 = _points(points0, points1)
    if len(p0) < 5:
        return None
    n0, n1 = pixel_to_camera(p0, K0), pixel_to_camera(p1, K1)
    threshold = ransac_px / np.mean([K0[0, 0], K0[1, 1], K1[0, 0], K1[1, 1]])
    if estimator == "poselib":
        camera = {"model": "PINHOLE", "width": 0, "height": 0, "params": [1.0, 1.0, 0.0, 0.0]}
        options = {"max_epipolar_error": float(threshold), "max_iterations": POSE_ITERATIONS, "success_prob": confidence, "seed": seed}
        pose, info = poselib_module().estimate_relative_pose(n0, n1, camera, camera, options, {})
        R, t, inliers = np.asarray(pose.R, np.float64), np.asarray(pose.t, np.float64).ravel(), _poselib_inliers(info, len(p0))
        if not inliers.any() or not np.all(np.isfinite(t)) or np.linalg.norm(t) < 1e-12:
            return None
        t = t / np.linalg.norm(t)
        return RelativePose(R, t, inliers, essential_matrix(R, t))
    cv2.setRNGSeed(seed)
    E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), method=cv2.RANSAC, prob=confidence, threshold=threshold)
    if E is None or mask is None:
        return None
    best = None
    for k in range(0, E.shape[0] - E.shape[0] % 3, 3):
        count, R, t, pose_mask = cv2.recoverPose(E[k:k + 3], n0, n1, np.eye(3), 1e9, mask=mask.copy())[:4]
        if best is None or count > best.num_inliers:
            best = RelativePose(R, t.ravel(), pose_mask.ravel().astype(bool), E[k:k + 3])
    return best


# Without a calibration: COLMAP's prior focal length when an image says nothing (1.2 × the longer side)
SIZE_FOCAL_FACTOR = 1.2


def intrinsics_from_size(size: tuple[int, int]) -> np.ndarray:
    """A guess for an uncalibrated image of ``size`` (width, height): focal length 1.2 × the longer
    side (COLMAP's prior), principal point at the image centre (COLMAP's convention)."""
    w, h = size
    f = SIZE_FOCAL_FACTOR * max(w, h)
    return np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])


def exif_focal_35mm(path) -> float | None:
    """The 35 mm-equivalent focal length (mm) an image file's EXIF gives (``FocalLengthIn35mmFilm``),
    or None (no such tag, not a file with EXIF; Pillow, which matplotlib brings, reads it)."""
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            value = image.getexif().get_ifd(0x8769).get(0xA405)  # Exif IFD, FocalLengthIn35mmFilm
    except Exception:  # noqa: BLE001 (an unreadable or foreign file simply has no EXIF focal length)
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def intrinsics_from_exif(path, size: tuple[int, int]) -> np.ndarray | None:
    """K from the EXIF 35 mm-equivalent focal length of the image file ``path`` shown at ``size``
    (width, height): f = f₃₅ / 36 mm × the longer side (a 36 mm wide frame), principal point at the
    centre; None when the file has no such tag."""
    f35 = exif_focal_35mm(path)
    if f35 is None:
        return None
    K = intrinsics_from_size(size)
    K[0, 0] = K[1, 1] = f35 / 36.0 * max(size)
    return K


def read_intrinsics(path) -> np.ndarray:
    """A 3×3 K from a text file of 9 numbers (three rows of three; ``#`` comments), checked
    (``check_intrinsics``); every problem is one line naming the file."""
    from pathlib import Path  # noqa: PLC0415

    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise PygmatchError(f"{path}: missing (intrinsics: a text file with the 3×3 matrix K, three rows of three numbers)") from None
    except OSError as e:
        raise PygmatchError(f"{path}: cannot read ({e.strerror or e})") from None
    tokens = [t for line in text.splitlines() for t in line.split("#")[0].replace(",", " ").split()]
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise PygmatchError(f"{path}: intrinsics must be 9 numbers (the 3×3 matrix K), found a word that is not a number") from None
    if len(values) != 9:
        raise PygmatchError(f"{path}: intrinsics must be 9 numbers (the 3×3 matrix K, three rows of three), found {len(values)}")
    return check_intrinsics(np.array(values).reshape(3, 3), str(path))
