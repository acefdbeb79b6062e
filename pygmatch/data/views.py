"""Affine view synthesis: SIFT keypoints of simulated oblique views of an image, mapped back to
its pixels, each remembering the view it came from.

A plane seen at an angle θ from its normal is squeezed by ``tilt = 1/cos θ`` along one direction;
SIFT absorbs scale and rotation but not tilts beyond about 2–2.5, so two views of one plane more
oblique than that share almost no SIFT keypoints. ASIFT (Morel and Yu, SIAM J. Imaging Sci. 2009)
simulates the missing tilts: rotate the image by φ, blur along x (σ = 0.8·√(t² − 1), against
aliasing) and shrink x by 1/t, for tilts in a geometric series and angles φ every 72°/t in [0°, 180°),
and detects SIFT on every simulated view. MODS (Mishkin, Matas and Perdoch, CVIU 2015) spends that
cost only where needed, in rounds of growing tilt sets: ``SYNTHESIS_ROUNDS`` are the rounds of
``Pipeline(views="auto")``.

Unlike OpenCV's ``AffineFeature`` (which returns the keypoints alone), every keypoint here keeps
its view (``ViewKeypoints.view``) and every view its affine map from the image's pixels
(``ViewKeypoints.affine``): a match then knows the local affine map between the two images (what
the two views' affine maps and the keypoints' own scale and orientation imply), and which of its
candidates came from the same place of the image seen twice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .features import SYNTHESIS_MAX_KEYPOINTS, Keypoints, cv_keypoint_arrays, raw_sift, root_sift

# Rounds of view synthesis, cheapest first: the tilts simulated on each image (both images). A
# tilt t costs about 180/(72/t) views of 1/t of the (rotated) image: ~2.5 times one SIFT extraction
# per tilt, whatever t. Round 1 covers relative tilts up to ~4·2.5 when the directions agree and
# round 2 fills in the rest of ASIFT's series (√2 … 8). ASIFT's series split in two, not tuned
# (docs/views.md has what it was measured on).
SYNTHESIS_ROUNDS: tuple[tuple[float, ...], ...] = ((2.0, 4.0), (math.sqrt(2), 2 * math.sqrt(2), 4 * math.sqrt(2), 8.0))
ANGLE_STEP_DEG = 72.0  # ASIFT's: the angles of tilt t are φ = k·72°/t in [0°, 180°)


@dataclass(frozen=True)
class View:
    """A simulated view: the image rotated by ``angle`` degrees, then shrunk by ``tilt`` along x."""

    tilt: float
    angle: float


def views_of(tilts) -> list[View]:
    """The views of each tilt (ASIFT's angles); tilt 1 is the image itself."""
    views = []
    for t in tilts:
        if t < 1:
            raise ValueError(f"tilts are >= 1, got {t}")
        step = ANGLE_STEP_DEG / t
        views += [View(float(t), 0.0)] if t == 1 else [View(float(t), float(a)) for a in np.arange(0.0, 180.0, step)]
    return views


def simulate(image: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(view_image, mask, A)``: the simulated view, the mask of its pixels that show the image
    (not the border the rotation adds), and ``A`` (2×3), the image's pixels → the view's."""
    h, w = image.shape[:2]
    out, mask = image, np.full((h, w), 255, np.uint8)
    if view.angle != 0.0:
        rotation, rotated_size = _rotation(w, h, view.angle)
        out = cv2.warpAffine(image, rotation, rotated_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if view.tilt != 1.0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=0.8 * math.sqrt(view.tilt**2 - 1), sigmaY=0.01)
        out = cv2.resize(out, (max(1, round(out.shape[1] / view.tilt)), out.shape[0]), interpolation=cv2.INTER_NEAREST)
    A = view_map((w, h), view)
    if view.angle != 0.0 or view.tilt != 1.0:
        mask = cv2.warpAffine(mask, A, (out.shape[1], out.shape[0]), flags=cv2.INTER_NEAREST)
        mask = cv2.erode(mask, np.ones((5, 5), np.uint8))  # no keypoints on the replicated border
    return out, mask, A


def _rotation(w: int, h: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """(2×3, (width, height)): the image rotated by ``angle`` degrees, shifted to fit its bounding box."""
    phi = math.radians(angle)
    c, s = math.cos(phi), math.sin(phi)
    R = np.array([[c, -s], [s, c]])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ R.T
    x, y = np.floor(corners.min(0))
    bw, bh = (np.ceil(corners.max(0)) - (x, y)).astype(int)
    return np.hstack([R, [[-x], [-y]]]), (int(bw), int(bh))


def view_map(size: tuple[int, int], view: View) -> np.ndarray:
    """(2×3) the affine map from the pixels of an image of (w, h) ``size`` to those of its ``view``
    (``simulate``'s ``A``): it depends on the size alone."""
    A = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) if view.angle == 0.0 else _rotation(*size, view.angle)[0]
    if view.tilt != 1.0:
        A[0] /= view.tilt
    return A


@dataclass
class ViewKeypoints:
    """Keypoints found on simulated views, in the image's pixels.

    ``keypoints``: positions mapped back to the image; scale and orientation as found in the view;
    ``view`` (N,) int64: the view of each keypoint, an index into ``views`` and ``affine``;
    ``affine`` (V, 2, 3): each view's map from the image's pixels (``simulate``'s ``A``)."""

    keypoints: Keypoints
    view: np.ndarray
    affine: np.ndarray
    views: list[View]

    def __len__(self) -> int:
        return len(self.keypoints)

    def subset(self, index: np.ndarray) -> "ViewKeypoints":
        return ViewKeypoints(self.keypoints.subset(index), self.view[index], self.affine, self.views)

    @property
    def tilts(self) -> np.ndarray:
        """(N,) the tilt of each keypoint's view."""
        return np.array([v.tilt for v in self.views], np.float64)[self.view]

    def strongest_index(self, count: int) -> np.ndarray:
        """The rows of the ``count`` keypoints of highest detector response, in their order (all if fewer)."""
        if len(self) <= count:
            return np.arange(len(self))
        return np.sort(np.argsort(-self.keypoints.score, kind="stable")[:count])

    @staticmethod
    def of_image(keypoints: Keypoints) -> "ViewKeypoints":
        """Keypoints found on the image itself: one view, tilt 1."""
        return ViewKeypoints(keypoints, np.zeros(len(keypoints), np.int64), np.eye(2, 3)[None], [View(1.0, 0.0)])

    @staticmethod
    def concatenate(parts: list["ViewKeypoints"]) -> "ViewKeypoints":
        offsets = np.cumsum([0] + [len(p.views) for p in parts])
        return ViewKeypoints(
            Keypoints.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.view + o for p, o in zip(parts, offsets)]),
            np.concatenate([p.affine for p in parts]), [v for p in parts for v in p.views])


def detect_views(image: np.ndarray, views: list[View], max_keypoints: int, raw: bool = False) -> ViewKeypoints:
    """SIFT (rootSIFT, unit norm; ``raw``: OpenCV's uint8 descriptors, as a feature bank keeps
    them) on every view of a grayscale uint8 image, up to ``max_keypoints`` per view, in the
    image's pixels."""
    # OpenCV's contrast threshold, whatever the plain extraction's: the rounds were measured with it
    sift = cv2.SIFT_create(nfeatures=max_keypoints)
    parts, view_of, affine = [], [], []
    for index, view in enumerate(views):
        simulated, mask, A = simulate(image, view)
        kps, d = sift.detectAndCompute(simulated, mask)
        affine.append(A)
        if not kps or d is None:
            continue
        xy, scale, ori, score = cv_keypoint_arrays(kps)
        back = cv2.invertAffineTransform(A)
        parts.append(Keypoints((xy @ back[:, :2].T + back[:, 2]).astype(np.float32), scale, ori, score, raw_sift(d) if raw else root_sift(d)))
        view_of.append(np.full(len(kps), index, np.int64))
    if not parts:
        empty = Keypoints.empty(128, np.uint8 if raw else np.float32)
        return ViewKeypoints(empty, np.zeros(0, np.int64), np.array(affine).reshape(-1, 2, 3), list(views))
    kp = Keypoints.concatenate(parts)
    if not raw:
        kp.descriptors /= np.linalg.norm(kp.descriptors, axis=1, keepdims=True) + 1e-12
    return ViewKeypoints(kp, np.concatenate(view_of), np.array(affine), list(views))


ALL_VIEWS = views_of([t for tilts in SYNTHESIS_ROUNDS for t in tilts])  # every view of the rounds, in the order they join
# an image's full set (``Features.synthetic`` after its own keypoints; a feature bank's): its own view first, then these
FULL_SET_VIEWS = [View(1.0, 0.0)] + ALL_VIEWS


def synthesised_keypoints(image: np.ndarray, plain: Keypoints, max_keypoints: int, raw: bool = False) -> ViewKeypoints:
    """The keypoints of the simulated views of every round of ``SYNTHESIS_ROUNDS`` (``detect_views``,
    up to ``max_keypoints`` per view) that the rounds can pick (``round_rows``: with the image's own
    keypoints ``plain``), a fraction of all. Their views: ``ALL_VIEWS``. ``raw``: as ``detect_views``."""
    found = detect_views(image, ALL_VIEWS, max_keypoints, raw)
    full = ViewKeypoints(Keypoints.concatenate([plain, found.keypoints]), np.concatenate([np.zeros(len(plain), np.int64), found.view + 1]),
                         np.concatenate([np.eye(2, 3)[None], found.affine]), FULL_SET_VIEWS)
    rows = np.unique(np.concatenate(round_rows(full)))
    return found.subset(rows[rows >= len(plain)] - len(plain))


def round_rows(full: ViewKeypoints) -> list[np.ndarray]:
    """Per round of ``SYNTHESIS_ROUNDS``, the rows of ``full`` (an image's own keypoints, tilt 1, and
    those of its simulated views) that it matches: the strongest ``SYNTHESIS_MAX_KEYPOINTS`` of tilt 1
    and of the round's and earlier rounds' tilts, in ``full``'s order."""
    rows, tilts = [], [1.0]
    for round_tilts in SYNTHESIS_ROUNDS:
        tilts += round_tilts
        known = np.nonzero(np.isin(full.tilts, tilts))[0]
        rows.append(known[full.subset(known).strongest_index(SYNTHESIS_MAX_KEYPOINTS)])
    return rows


def round_sets(full: ViewKeypoints) -> list[ViewKeypoints]:
    """Per round of ``SYNTHESIS_ROUNDS``, the keypoints of ``full`` it matches (``round_rows``)."""
    return [full.subset(rows) for rows in round_rows(full)]


def local_affine(a: ViewKeypoints, b: ViewKeypoints, matches: np.ndarray) -> np.ndarray:
    """(K, 2, 2): for each match (i of ``a``, j of ``b``), the linear map from image a's pixels
    around the keypoint to image b's that the match implies: into a's view, the similarity between
    the two keypoints as SIFT found them (scale ratio, orientation difference), out of b's view."""
    i, j = matches[:, 0], matches[:, 1]
    La, Lb = a.affine[a.view[i]][:, :, :2], b.affine[b.view[j]][:, :, :2]
    s = b.keypoints.scale[j].astype(np.float64) / np.maximum(a.keypoints.scale[i], 1e-6)
    # OpenCV's SIFT angles: a rotation of the image by R(θ) (in pixel coordinates, y down) adds θ
    d = b.keypoints.ori[j].astype(np.float64) - a.keypoints.ori[i]
    c, sn = np.cos(d) * s, np.sin(d) * s
    similarity = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
    return np.linalg.inv(Lb) @ similarity @ La


__all__ = ["SYNTHESIS_ROUNDS", "View", "views_of", "simulate", "view_map", "ViewKeypoints", "detect_views", "synthesised_keypoints",
           "round_rows", "round_sets", "ALL_VIEWS", "FULL_SET_VIEWS", "local_affine"]
