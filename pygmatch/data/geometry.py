"""Homographies: random sampling, warping points and images, corner error.

All homographies map pixel coordinates ``(x, y)`` of image 0 to pixel coordinates of
image 1, with the pixel centre convention of OpenCV (the top-left pixel's centre is (0, 0)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from ..errors import PygmatchError


@dataclass(frozen=True)
class HomographyRanges:
    """Ranges of the random homography at ``difficulty=1``; every range scales linearly with it.

    rotation: uniform in ±``rotation_deg`` degrees about the image centre.
    scale: ``exp(u)``, ``u`` uniform in ±``log_scale`` (0.3 → ×0.74–1.35; at difficulty 2 ×0.55–1.82).
    perspective: the projective row, chosen so that ``1 + p·x`` varies by at most ±``perspective``
        across the image (0.1 → opposite borders shrink/grow by up to 10 %).
    translation: the centre moves by up to ±``translation`` of the image width/height.
    min_overlap: resample until the warped image 0 and image 1 share at least this fraction of
        the smaller of the two areas, so the content stays visible.
    log_tilt: an area-preserving stretch along a random direction by ``exp(v·log_tilt)``, ``v``
        uniform in [0, 1] (the anisotropy σ1/σ2 of a plane seen obliquely, 1/cos(viewpoint angle), ASIFT's
        tilt); 0 (the default) draws nothing, so the difficulty-1 and -2 pairs are what they always were.
    min_log_tilt: the stretch starts there instead: ``exp(min_log_tilt + v·(log_tilt − min_log_tilt))``.
    perspective_first: apply the projective part in image 0's own (centred) coordinates, before the
        zoom, so that ``perspective`` bounds the distortion across image 0 at any zoom; False (the
        default, difficulties 1 and 2) applies it after rotation and zoom, so a zoom of s scales it by s.
    """

    rotation_deg: float = 30.0
    log_scale: float = 0.3
    perspective: float = 0.1
    translation: float = 0.1
    min_overlap: float = 0.5
    log_tilt: float = 0.0
    perspective_first: bool = False
    min_log_tilt: float = 0.0


# Difficulty 3 is not three times difficulty 1 but the ranges measured on real photograph pairs
# (benchmarks/results/real_ranges.md, docs/training-data.md): zoom to 4x either way (bark: 0.25),
# any rotation (bark: 150°), an oblique view up to σ1/σ2 = 3.5 (graffiti: 3.65, wall: 2.35) and
# the perspective of a wall seen at 65° (p = 0.26 across image 0; here up to 0.15 per axis, 0.3 at
# a corner). It is sampled at these ranges unscaled.
REAL_RANGES = HomographyRanges(rotation_deg=180.0, log_scale=math.log(4.0), perspective=0.15, translation=0.15, min_overlap=0.5,
                               log_tilt=math.log(3.5), perspective_first=True)
# Difficulty 4, "extreme": an oblique view of tilt 3 to 8 (70.5° to 82.8° from the normal), the
# range of view synthesis (``views="auto"``; ASIFT simulates tilts √2 … 8) that SIFT alone does not
# match; zoom 0.5-2, any rotation, perspective as difficulty 3. At tilt 8 an image squeezed to 1/√8
# of its width can share only ~35 % of the frame, hence the lower overlap.
EXTREME_RANGES = HomographyRanges(rotation_deg=180.0, log_scale=math.log(2.0), perspective=0.15, translation=0.1, min_overlap=0.3,
                                  log_tilt=math.log(8.0), perspective_first=True, min_log_tilt=math.log(3.0))
DIFFICULTY_PRESETS = {3.0: REAL_RANGES, 4.0: EXTREME_RANGES}


def ranges_at(difficulty: float, ranges: HomographyRanges = HomographyRanges()) -> tuple[HomographyRanges, float]:
    """``(ranges, multiplier)`` the sampler uses: a preset difficulty (3: ``REAL_RANGES``, 4: ``EXTREME_RANGES``) with the
    default ranges gives the preset at multiplier 1; anything else scales ``ranges`` by ``difficulty``."""
    if ranges == HomographyRanges() and float(difficulty) in DIFFICULTY_PRESETS:
        return DIFFICULTY_PRESETS[float(difficulty)], 1.0
    return ranges, difficulty


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)


def sample_homography(
    size: tuple[int, int],
    rng: np.random.Generator,
    difficulty: float = 1.0,
    ranges: HomographyRanges = HomographyRanges(),
    max_tries: int = 100,
) -> np.ndarray:
    """A random homography for an image of ``size = (width, height)``, as a 3×3 float64 array."""
    if difficulty < 0:
        raise PygmatchError(f"difficulty must be >= 0, got {difficulty}")
    ranges, difficulty = ranges_at(difficulty, ranges)
    w, h = size
    centre = np.array([w / 2, h / 2])
    best, best_overlap = np.eye(3), -1.0
    for _ in range(max_tries):
        u = rng.uniform(-1, 1, size=6) * difficulty
        angle = math.radians(ranges.rotation_deg) * u[0]
        s = math.exp(ranges.log_scale * u[1])
        c, si = math.cos(angle), math.sin(angle)
        rot_scale = np.array([[s * c, -s * si, 0], [s * si, s * c, 0], [0, 0, 1]])
        if ranges.log_tilt > 0:  # drawn only then: the stream of the other ranges stays as it was
            # written so that min_log_tilt = 0 draws bit for bit what it drew before it existed
            t = math.exp(0.5 * (ranges.log_tilt - ranges.min_log_tilt) * difficulty * rng.uniform(0, 1) + 0.5 * ranges.min_log_tilt)
            phi = rng.uniform(0, math.pi)
            cp, sp = math.cos(phi), math.sin(phi)
            R = np.array([[cp, -sp], [sp, cp]])
            tilt = np.eye(3)
            tilt[:2, :2] = R @ np.diag([t, 1 / t]) @ R.T
            rot_scale = rot_scale @ tilt
        persp = np.eye(3)
        persp[2, 0] = ranges.perspective * u[2] / (w / 2)
        persp[2, 1] = ranges.perspective * u[3] / (h / 2)
        shift = centre + ranges.translation * u[4:6] * np.array([w, h])
        if ranges.perspective_first:
            H = _translation(*shift) @ rot_scale @ persp @ _translation(*-centre)
        else:
            H = _translation(*shift) @ persp @ rot_scale @ _translation(*-centre)
        H /= H[2, 2]
        overlap = image_overlap(H, size)
        if overlap >= ranges.min_overlap:
            return H
        if overlap > best_overlap:
            best, best_overlap = H, overlap
    return best


def image_corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)


def warp_points(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Apply ``H`` to an (N, 2) array of xy points. Points sent to infinity come back as inf."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homog = points @ H[:, :2].T + H[:, 2]
    z = homog[:, 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = homog[:, :2] / z
    out[np.abs(z[:, 0]) < 1e-12] = np.inf
    return out


def warp_image(image: np.ndarray, H: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Image 1 = image 0 seen through ``H``; pixels that come from outside image 0 are black."""
    size = size or (image.shape[1], image.shape[0])
    return cv2.warpPerspective(image, H, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def image_overlap(H: np.ndarray, size: tuple[int, int]) -> float:
    """Shared area of warped image 0 and image 1, over the smaller of the two areas (0 if folded)."""
    quad = warp_points(image_corners(size), H)
    if not np.all(np.isfinite(quad)) or not cv2.isContourConvex(quad.astype(np.float32)):
        return 0.0
    quad_area = cv2.contourArea(quad.astype(np.float32))
    rect = image_corners(size).astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(quad.astype(np.float32), rect)
    denom = min(quad_area, cv2.contourArea(rect))
    return float(inter / denom) if denom > 0 else 0.0


def corner_error(H_est: np.ndarray | None, H_true: np.ndarray, size: tuple[int, int]) -> float:
    """Mean distance in image-1 pixels between the 4 image corners mapped by ``H_est`` and ``H_true``.

    ``None`` (no estimate) or a degenerate estimate is an infinite error.
    """
    if H_est is None or not np.all(np.isfinite(H_est)):
        return math.inf
    corners = image_corners(size)
    err = np.linalg.norm(warp_points(corners, H_est) - warp_points(corners, H_true), axis=1)
    err = float(err.mean())
    return err if math.isfinite(err) else math.inf


def fit_local_motion(p0: np.ndarray, p1: np.ndarray, support: np.ndarray, k: int, iterations: int = 4,
                     exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every match ``p0[i] -> p1[i]`` (float64 pixels): an affine motion fitted to its ``k``
    nearest support matches in image 0 (``support``: indices; the match itself excluded unless
    ``exclude_self`` is False) by iteratively reweighted least squares with Cauchy weights at 1 px.

    Returns ``(A, neighbour_residuals, neighbour_mask)``: ``A`` (n, 3, 2) maps ``[(x0' − x0) / 50, 1]``
    to ``x1' − x1`` around each match (so ``A[:, 2]`` is the motion's miss at the match itself and
    ``A[:, :2] / 50`` its linear part), the neighbours' distances from it (n, k') in pixels, and which
    of the k' neighbours counted (n, k')."""
    n = len(p0)
    kk = min(k + 1, len(support))
    _, nb = cKDTree(p0[support]).query(p0, kk)
    nb = np.asarray(nb).reshape(n, kk)
    counted = (support[nb] != np.arange(n)[:, None]).astype(np.float64) if exclude_self else np.ones((n, kk))
    # Coordinates relative to the match (scaled to ~1) keep the 3x3 systems well conditioned,
    # and make the fitted motion's value at the match simply the translation row.
    X = np.concatenate([(p0[support][nb] - p0[:, None]) / 50.0, np.ones((n, kk, 1))], -1)
    Y = p1[support][nb] - p1[:, None]
    w = counted
    for _ in range(iterations + 1):
        XtW = X.transpose(0, 2, 1) * w[:, None, :]
        A = np.linalg.solve(XtW @ X + 1e-4 * np.eye(3), XtW @ Y)
        r_nb = np.linalg.norm(X @ A - Y, axis=-1)
        w = counted / (1.0 + r_nb**2)
    return A, r_nb, counted
