"""Keypoint extraction: SIFT with rootSIFT descriptors, ORB, ASIFT (SIFT on affine-simulated
views of the image, OpenCV's ``AffineFeature``: Morel and Yu 2009; the anchor of extreme
viewpoints, where SIFT's keypoints do not repeat; tens of times slower than SIFT), and the learned
XFeat (``pygmatch.data.learned``; the optional ``anchors`` extra).

All return :class:`Keypoints` with float32 descriptors of unit L2 norm, so one distance
(L2) serves every matcher: for ORB the 256 bits are stored as ±1/16, which makes the squared
L2 distance equal to the Hamming distance / 64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from ..errors import PygmatchError
from ..values import contrast_threshold
from .images import points_to_original
from .selection import SELECTIONS, spread, strongest

FEATURES = ("sift", "orb", "asift", "xfeat")
# Keypoints per image and SIFT's contrast threshold (OpenCV's ``contrastThreshold``: the least
# contrast of a keypoint, times the number of scale layers per octave). The pipelines on users'
# photographs (``Pipeline``, ``pygmatch match``, ``pygmatch sfm``, ``eval.pose``, ``eval.sfm``) take
# 4096 at COLMAP's threshold (its peak threshold 0.02 / 3 layers is 0.02 in OpenCV's units), chosen
# together on the real development sets (docs/results.md, "Keypoint budget"): at OpenCV's default,
# 0.04, a photograph with little texture does not fill the budget (a median reichstag photograph at
# 1024 px holds 2,600 keypoints), and a budget that both fill gets the same keypoints at either.
# The networks train, and the homography benchmarks (``eval.coco``, ``eval.hpatches``) run, at
# 1024 and 0.04, their protocol.
DEFAULT_MAX_KEYPOINTS = 4096
DEFAULT_CONTRAST_THRESHOLD = 0.02
BENCHMARK_MAX_KEYPOINTS = 1024
BENCHMARK_CONTRAST_THRESHOLD = 0.04
# Which keypoints fill the budget (``pygmatch.data.selection``): "spread" takes ANMS among the
# SPREAD_CANDIDATES × budget strongest. Chosen on the pose development pairs (docs/results.md,
# "Keypoint selection"): below SPREAD_BELOW SIFT keypoints it is the better, at that budget the
# strongest are, so the pipelines on users' photographs take ``default_selection``. The networks
# train, and the homography benchmarks run, on the strongest.
SPREAD_CANDIDATES = 4
SPREAD_BELOW = DEFAULT_MAX_KEYPOINTS
# On-demand view synthesis (``views="auto"``, ``pygmatch.data.views``): a pair's plain match stands
# when its fundamental matrix has at least this many RANSAC inliers (1 px of the downscaled images),
# COLMAP's own minimum for a verified pair; else keypoints of simulated oblique views of the same
# images (at most SYNTHESIS_MAX_KEYPOINTS per image) are matched, round by round, and kept when
# they reach it with more inliers.
VIEWS = ("plain", "auto")
SYNTHESIS_MIN_INLIERS = 15
SYNTHESIS_MAX_KEYPOINTS = 8192
DESCRIPTOR_DIM = {"sift": 128, "orb": 256, "asift": 128, "xfeat": 64}
RAW_DESCRIPTOR_BYTES = {"sift": 128, "orb": 32, "asift": 128, "xfeat": 64}


@dataclass
class Keypoints:
    xy: np.ndarray  # (N, 2) float32 pixel coordinates
    scale: np.ndarray  # (N,) float32 keypoint size (diameter, px) as OpenCV reports it
    ori: np.ndarray  # (N,) float32 orientation in radians
    score: np.ndarray  # (N,) float32 detector response
    descriptors: np.ndarray  # (N, D) float32, unit norm

    def __len__(self) -> int:
        return len(self.xy)

    def subset(self, index: np.ndarray) -> "Keypoints":
        return Keypoints(self.xy[index], self.scale[index], self.ori[index], self.score[index], self.descriptors[index])

    @staticmethod
    def empty(dim: int, dtype=np.float32) -> "Keypoints":
        z = np.zeros(0, np.float32)
        return Keypoints(np.zeros((0, 2), np.float32), z, z.copy(), z.copy(), np.zeros((0, dim), dtype))

    @staticmethod
    def concatenate(parts: list["Keypoints"]) -> "Keypoints":
        return Keypoints(*(np.concatenate([getattr(k, f.name) for k in parts]) for f in fields(Keypoints)))


def cv_keypoint_arrays(kps) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(xy (N, 2) float64, scale, ori (radians), score (N,) float32)`` of OpenCV keypoints."""
    return (np.array([k.pt for k in kps], np.float64), np.array([k.size for k in kps], np.float32),
            np.deg2rad(np.array([k.angle for k in kps], np.float32)), np.array([k.response for k in kps], np.float32))


def _from_cv(kps, desc: np.ndarray | None, dim: int, max_keypoints: int, selection: str) -> Keypoints:
    if not kps or desc is None:
        return Keypoints.empty(dim, np.uint8)
    xy, scale, ori, score = cv_keypoint_arrays(kps)
    # OpenCV may return a few more than asked (ties); keep max_keypoints, in a fixed order.
    return Keypoints(xy.astype(np.float32), scale, ori, score, desc).subset(select(selection, xy, score, max_keypoints))


def check_selection(selection) -> str:
    """One of ``SELECTIONS``, or one ``PygmatchError``."""
    if selection not in SELECTIONS:
        raise PygmatchError(f"unknown keypoint selection {selection!r}; choose from {', '.join(SELECTIONS)}")
    return selection


def default_selection(features: str, max_keypoints: int) -> str:
    """The selection the pipelines on users' photographs take: SIFT's keypoints spread below
    ``SPREAD_BELOW``, else (and for the other features, where it was not measured) the strongest."""
    return "spread" if features == "sift" and max_keypoints < SPREAD_BELOW else "strongest"


def select(selection: str, xy: np.ndarray, score: np.ndarray, max_keypoints: int) -> np.ndarray:
    """Indices of the kept keypoints: the ``max_keypoints`` strongest, or ``max_keypoints`` chosen by ANMS."""
    return strongest(score, max_keypoints) if selection == "strongest" else spread(xy, score, max_keypoints)


def root_sift(desc: np.ndarray) -> np.ndarray:
    """Hellinger-kernel SIFT (Arandjelović & Zisserman 2012): L1-normalise, square root."""
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-8
    return np.sqrt(desc)


def raw_sift(desc: np.ndarray) -> np.ndarray:
    """OpenCV's descriptors (float32 holding integers in [0, 255] for SIFT; uint8 bytes for ORB) as uint8, losslessly."""
    return np.clip(np.rint(desc), 0, 255).astype(np.uint8)


def check_contrast_threshold(value) -> float:
    """SIFT's contrast threshold as a float: a number in the range ``values.contrast_threshold`` takes
    on the command line, or one ``PygmatchError``."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ValueError
        return contrast_threshold(value)
    except ValueError:
        raise PygmatchError(f"contrast threshold must be a number in (0, 1), got {value!r}") from None


def detect(image: np.ndarray, features: str = "sift", max_keypoints: int = BENCHMARK_MAX_KEYPOINTS,
           contrast_threshold: float = BENCHMARK_CONTRAST_THRESHOLD, selection: str = "strongest") -> Keypoints:
    """Detect up to ``max_keypoints`` keypoints with their *raw* descriptors: SIFT's 128 values
    are integers in [0, 255] in OpenCV and ORB's 256 bits come packed in 32 bytes, so both are
    kept losslessly as uint8 (what the feature bank stores), XFeat's unit-norm floats as bytes of
    1/127.5 (``learned.quantize_unit``). ``finish_descriptors`` turns them into the unit-norm
    float descriptors every matcher uses. ``contrast_threshold``: SIFT's and ASIFT's (ORB and XFeat
    have none). ``selection``: which keypoints fill the budget (``SELECTIONS``); "spread" detects
    ``SPREAD_CANDIDATES`` times as many and keeps ``max_keypoints`` of them by ANMS."""
    if features not in FEATURES:
        raise PygmatchError(f"unknown features {features!r}; choose from {', '.join(FEATURES)}")
    if max_keypoints < 1:
        raise PygmatchError(f"max keypoints must be >= 1, got {max_keypoints}")
    contrast_threshold = check_contrast_threshold(contrast_threshold)
    candidates = max_keypoints * (SPREAD_CANDIDATES if check_selection(selection) == "spread" else 1)
    if features == "xfeat":
        from .learned import XFEAT_SIZE, quantize_unit, xfeat_arrays  # noqa: PLC0415 (torch and kornia only when asked for)

        xy, score, desc = xfeat_arrays(image, candidates)
        n = len(xy)
        kp = Keypoints(xy, np.full(n, XFEAT_SIZE, np.float32), np.zeros(n, np.float32), score, quantize_unit(desc))
        return kp.subset(select(selection, xy, score, max_keypoints))
    if features == "orb":
        detector = cv2.ORB_create(nfeatures=candidates)
    else:
        detector = cv2.SIFT_create(nfeatures=candidates, contrastThreshold=contrast_threshold)
        if features == "asift":  # SIFT on every simulated view; OpenCV maps the keypoints back to the image's pixels
            detector = cv2.AffineFeature_create(detector)
    kps, desc = detector.detectAndCompute(image, None)
    if desc is not None:
        desc = raw_sift(desc)
    return _from_cv(kps, desc, RAW_DESCRIPTOR_BYTES[features], max_keypoints, selection)


def finish_descriptors(raw: np.ndarray, features: str) -> np.ndarray:
    """Raw uint8 descriptors (``detect``) -> float32 unit-norm ones: rootSIFT, XFeat's floats, or ORB
    bits as ±1/16."""
    if features in ("sift", "asift"):
        return root_sift(raw)
    if features == "xfeat":
        from .learned import dequantize_unit  # noqa: PLC0415

        return dequantize_unit(raw)
    bits = np.unpackbits(np.asarray(raw, np.uint8).reshape(len(raw), -1), axis=1)
    return (bits.astype(np.float32) * 2 - 1) / math.sqrt(256)


def finish(kp: Keypoints, features: str) -> Keypoints:
    return Keypoints(kp.xy, kp.scale, kp.ori, kp.score, finish_descriptors(kp.descriptors, features))


def extract(image: np.ndarray, features: str = "sift", max_keypoints: int = BENCHMARK_MAX_KEYPOINTS,
            contrast_threshold: float = BENCHMARK_CONTRAST_THRESHOLD, selection: str = "strongest") -> Keypoints:
    """Detect up to ``max_keypoints`` keypoints on a grayscale uint8 image (unit-norm descriptors)."""
    return finish(detect(image, features, max_keypoints, contrast_threshold, selection), features)


def to_original(kp: Keypoints, S: np.ndarray) -> Keypoints:
    """Keypoints found on an image resized by ``S`` (``pygmatch.data.images.downscale``: pixel
    centres move as u = s·(x + 0.5) − 0.5 per axis) in the original image's pixels: positions
    mapped back, sizes divided by the mean scale factor."""
    sx, sy = float(S[0, 0]), float(S[1, 1])
    if sx == sy == 1.0:
        return kp
    xy = points_to_original(kp.xy, S).astype(np.float32)
    scale = (kp.scale / np.sqrt(sx * sy)).astype(np.float32)
    return Keypoints(xy, scale, kp.ori, kp.score, kp.descriptors)
