"""Difficulty 3: the homography and photometric ranges of real photograph pairs. Difficulties 1
and 2 draw exactly what they always drew; difficulty 3 reaches the zoom, rotation, oblique view
and perspective measured on the development sequences (benchmarks/results/real_ranges.md), and
its photometric changes blur, re-expose and JPEG-compress a real image."""
from __future__ import annotations

import math

import cv2
import numpy as np

from pygmatch.data import EMBEDDED_IMAGES, list_images, read_gray
from pygmatch.data.geometry import EXTREME_RANGES, REAL_RANGES, HomographyRanges, image_overlap, ranges_at, sample_homography
from pygmatch.data.photometric import Photometric, disk_kernel, line_kernel


def centre_jacobian(H: np.ndarray, size=(640, 480)) -> np.ndarray:
    x, y = size[0] / 2, size[1] / 2
    w = H[2, 0] * x + H[2, 1] * y + H[2, 2]
    u, v = H[0, :2] @ (x, y) + H[0, 2], H[1, :2] @ (x, y) + H[1, 2]
    return np.array([[H[0, 0] * w - u * H[2, 0], H[0, 1] * w - u * H[2, 1]], [H[1, 0] * w - v * H[2, 0], H[1, 1] * w - v * H[2, 1]]]) / w**2


def test_difficulties_1_and_2_are_unchanged():
    # values drawn by the sampler before difficulty 3 existed (same seeds)
    H1 = sample_homography((640, 480), np.random.default_rng([0, 0]), 1.0)
    H2 = sample_homography((640, 480), np.random.default_rng([0, 0]), 2.0)
    np.testing.assert_allclose(H1[0], [0.64524962, -0.20231179, 149.85843648], rtol=1e-6)
    np.testing.assert_allclose(H2[2], [-4.54157360e-04, -3.56242859e-04, 1.0], rtol=1e-6)
    assert ranges_at(1.0) == (HomographyRanges(), 1.0) and ranges_at(2.0) == (HomographyRanges(), 2.0)
    assert ranges_at(3.0) == (REAL_RANGES, 1.0)
    image = read_gray(list_images(EMBEDDED_IMAGES)[0])
    out = Photometric()(image, np.random.default_rng(5), 1.0)
    assert int(out.astype(np.int64).sum()) == 37_264_298


def test_difficulty_3_covers_the_real_pairs():
    rng = np.random.default_rng(0)
    zoom, rot, tilt, overlap = [], [], [], []
    for _ in range(400):
        H = sample_homography((640, 480), rng, 3.0)
        J = centre_jacobian(H)
        U, s, Vt = np.linalg.svd(J)
        R = U @ Vt
        zoom.append(math.sqrt(abs(np.linalg.det(J))))
        rot.append(math.degrees(math.atan2(R[1, 0], R[0, 0])))
        tilt.append(s[0] / s[1])
        overlap.append(image_overlap(H, (640, 480)))
    zoom, rot, tilt = np.array(zoom), np.abs(rot), np.array(tilt)
    # measured on the development pairs: zoom 0.25-1.05, rotation up to 150°, σ1/σ2 up to 3.65
    assert zoom.min() < 0.3 and zoom.max() > 3.0
    assert rot.max() > 150
    assert tilt.max() > 3.0 and np.median(tilt) > 1.3
    assert np.mean(np.array(overlap) >= REAL_RANGES.min_overlap) > 0.95


def test_difficulty_4_is_an_oblique_view_of_tilt_3_to_8():
    rng = np.random.default_rng(0)
    tilt, overlap = [], []
    for _ in range(200):
        H = sample_homography((640, 480), rng, 4.0)
        s = np.linalg.svd(centre_jacobian(H), compute_uv=False)
        tilt.append(s[0] / s[1])
        overlap.append(image_overlap(H, (640, 480)))
    tilt = np.array(tilt)
    assert ranges_at(4.0) == (EXTREME_RANGES, 1.0)
    assert tilt.min() > 2.9 and tilt.max() < 8.1 and np.percentile(tilt, 90) > 6.5
    assert min(overlap) >= EXTREME_RANGES.min_overlap
    image = read_gray(list_images(EMBEDDED_IMAGES)[0])  # the real photometric changes, as difficulty 3
    for seed in range(3):
        assert np.array_equal(Photometric()(image, np.random.default_rng(seed), 4.0), Photometric()(image, np.random.default_rng(seed), 3.0))


def test_blur_kernels_are_normalised_disks_and_lines():
    d = disk_kernel(2.5)
    assert d.shape == (7, 7) and abs(d.sum() - 1) < 1e-6 and d[3, 3] > 0 and d[0, 0] == 0
    line = line_kernel(7.0, 0.0)
    assert abs(line.sum() - 1) < 1e-6 and line[line.shape[0] // 2].sum() > 0.99  # horizontal: one row


def test_difficulty_3_photometry_changes_exposure_and_sharpness():
    image = read_gray(list_images(EMBEDDED_IMAGES)[1])
    sharp0 = cv2.Laplacian(image.astype(np.float32), cv2.CV_32F).var()
    exposure, sharpness = [], []
    for seed in range(24):
        out = Photometric()(image, np.random.default_rng(seed), 3.0)
        assert out.dtype == np.uint8 and out.shape == image.shape
        exposure.append(out.mean() / image.mean())
        sharpness.append(cv2.Laplacian(out.astype(np.float32), cv2.CV_32F).var() / sharp0)
    # real pairs: exposure 0.29-1.26, sharpness down to 0.19 of the reference
    assert min(exposure) < 0.5 and max(exposure) > 1.1
    assert min(sharpness) < 0.3
