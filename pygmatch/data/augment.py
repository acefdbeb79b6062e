"""Augmentations that are exact on stored keypoints, so one feature bank serves many epochs.

Each takes ``(kp0, kp1, H_0to1, rng, size)`` and returns a new ``(kp0, kp1, H_0to1)`` in which
``H_0to1`` still maps every image-0 keypoint to where it really is in image 1: the ground truth
computed afterwards is exactly as true as the bank's.
"""
from __future__ import annotations

import math

import numpy as np

from .features import Keypoints


class SwapImages:
    """With probability ``p`` image 1 becomes image 0 and ``H`` becomes ``H⁻¹``: the photometric
    change and the detector's view then fall on the other side."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, kp0, kp1, H, rng, size):
        if rng.random() < self.p:
            return kp1, kp0, np.linalg.inv(H)
        return kp0, kp1, H

    def __repr__(self) -> str:
        return f"SwapImages(p={self.p})"


class RandomSimilarity:
    """A random rotation (±``degrees``), scale (×exp(±``log_scale``)) about the image centre and
    translation (±``shift`` of the size) applied to image 1's keypoints, as if image 1 had been
    warped by it: positions move by ``S``, orientations turn by the rotation, scales grow by the
    scale, ``H ← S·H``. Descriptors stay: SIFT and ORB describe a patch in the keypoint's own
    frame of orientation and scale, so they are invariant to exactly this. Keypoints that leave
    the frame are dropped, as a real warp would crop them."""

    def __init__(self, degrees: float = 20.0, log_scale: float = 0.2, shift: float = 0.05):
        self.degrees, self.log_scale, self.shift = degrees, log_scale, shift

    def matrix(self, rng, size) -> tuple[np.ndarray, float, float]:
        w, h = size
        theta = math.radians(rng.uniform(-self.degrees, self.degrees))
        s = math.exp(rng.uniform(-self.log_scale, self.log_scale))
        c, sn = s * math.cos(theta), s * math.sin(theta)
        tx, ty = rng.uniform(-self.shift, self.shift) * w, rng.uniform(-self.shift, self.shift) * h
        cx, cy = (w - 1) / 2, (h - 1) / 2
        S = np.array([[c, -sn, cx - c * cx + sn * cy + tx], [sn, c, cy - sn * cx - c * cy + ty], [0, 0, 1]])
        return S, theta, s

    def __call__(self, kp0, kp1, H, rng, size):
        S, theta, s = self.matrix(rng, size)
        xy = kp1.xy.astype(np.float64) @ S[:2, :2].T + S[:2, 2]
        w, h = size
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
        # OpenCV's keypoint angle turns with the image: +theta for a rotation by theta in pixel
        # coordinates (checked in tests/test_data_bank.py by re-detecting on a rotated image).
        ori = np.mod(kp1.ori + theta, 2 * math.pi)
        moved = Keypoints(xy.astype(np.float32), (kp1.scale * s).astype(np.float32), ori.astype(np.float32), kp1.score, kp1.descriptors)
        return kp0, moved.subset(np.nonzero(inside)[0]), S @ H

    def __repr__(self) -> str:
        return f"RandomSimilarity(degrees={self.degrees}, log_scale={self.log_scale}, shift={self.shift})"


class KeypointSubset:
    """Keep ``max_keypoints`` per image: the strongest (as extraction at that count would), or,
    with probability ``p_random``, a random subset, so the density and the mix of keypoints vary
    from epoch to epoch."""

    def __init__(self, max_keypoints: int, p_random: float = 0.5):
        self.max_keypoints, self.p_random = max_keypoints, p_random

    def pick(self, kp: Keypoints, rng) -> Keypoints:
        n = len(kp)
        if n <= self.max_keypoints:
            return kp
        if rng.random() < self.p_random:
            keep = np.sort(rng.choice(n, self.max_keypoints, replace=False))
        else:
            keep = np.sort(np.argsort(-kp.score, kind="stable")[: self.max_keypoints])
        return kp.subset(keep)

    def __call__(self, kp0, kp1, H, rng, size):
        return self.pick(kp0, rng), self.pick(kp1, rng), H

    def __repr__(self) -> str:
        return f"KeypointSubset(max_keypoints={self.max_keypoints}, p_random={self.p_random})"


AUGMENTATIONS = {"swap": SwapImages, "similarity": RandomSimilarity, "subset": KeypointSubset}
