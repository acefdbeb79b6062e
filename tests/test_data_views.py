"""View synthesis (``pygmatch.data.views``): simulated oblique views, keypoints mapped back with
their views, the local affine map a match implies, and the ratio test against the first
geometrically inconsistent neighbour that keypoints found on several views need."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.data.views import SYNTHESIS_ROUNDS, View, ViewKeypoints, detect_views, local_affine, simulate, views_of
from pygmatch.errors import PygmatchError
from pygmatch.matching.nearest import fginn_match, nearest_neighbor_match
from pygmatch.refinement import load_refiner


@pytest.fixture
def tilted(image):
    """The embedded photograph squeezed 4 times along a direction at 30° (an oblique view of tilt 4)."""
    h, w = image.shape
    phi = math.radians(30)
    R = np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    L = R @ np.diag([1.0, 0.25]) @ R.T * 1.4
    H = np.eye(3)
    H[:2, :2] = L
    H[:2, 2] = np.array([w / 2, h / 2]) - L @ [w / 2, h / 2]
    return image, cv2.warpPerspective(image, H, (w, h)), H


def test_views_follow_asifts_angles_and_map_pixels_into_the_view(image):
    views = views_of((1.0, 2.0, 4.0))
    assert views[0] == View(1.0, 0.0)
    assert [v.angle for v in views if v.tilt == 2.0] == [0.0, 36.0, 72.0, 108.0, 144.0]
    assert len([v for v in views if v.tilt == 4.0]) == 10
    simulated, mask, A = simulate(image, View(4.0, 36.0))
    h, w = image.shape
    inside = np.array([[100.0, 80.0], [w / 2, h / 2], [500.0, 400.0]])
    where = inside @ A[:, :2].T + A[:, 2]
    # a point of the image lands inside the view, on a pixel the mask marks as the image's
    assert (where >= 0).all() and (where[:, 0] < simulated.shape[1]).all() and (where[:, 1] < simulated.shape[0]).all()
    assert (mask[np.rint(where[:, 1]).astype(int), np.rint(where[:, 0]).astype(int)] == 255).all()
    assert simulated.shape[1] < simulated.shape[0]  # the rotated image's width, shrunk 4 times
    with pytest.raises(ValueError, match="tilts are >= 1"):
        views_of((0.5,))


def test_views_recover_a_tilt_sift_cannot_and_know_the_local_affine_map(tilted):
    image, warped, H = tilted
    plain = nearest_neighbor_match(extract(image, "sift", 2048).descriptors, extract(warped, "sift", 2048).descriptors, 0.8)[0]
    a, b = (detect_views(im, views_of((1.0,) + SYNTHESIS_ROUNDS[0]), 2048) for im in (image, warped))
    assert a.keypoints.xy[:, 0].max() < image.shape[1] and a.keypoints.xy[:, 1].max() < image.shape[0]
    matches, _ = fginn_match(a.keypoints.descriptors, b.keypoints.descriptors, a.keypoints.xy, b.keypoints.xy)
    error = np.linalg.norm(warp_points(a.keypoints.xy[matches[:, 0]], H) - b.keypoints.xy[matches[:, 1]], axis=1)
    right = matches[error < 3]
    assert len(right) >= 50 and len(right) >= 3 * len(plain)
    # the tilted views found most of them, and each match knows the map image -> warped (H's linear part)
    assert np.mean((a.tilts[right[:, 0]] > 1) | (b.tilts[right[:, 1]] > 1)) > 0.5
    maps = local_affine(a, b, right)
    relative = np.linalg.norm(maps - H[:2, :2], axis=(1, 2)) / np.linalg.norm(H[:2, :2])
    assert np.median(relative) < 0.25


def test_fginn_keeps_matches_that_duplicated_keypoints_hide_from_lowes_test(image):
    """Every keypoint of image 1 found twice, 1 px apart (as on two synthesised views): Lowe's
    test rejects every match, the first geometrically inconsistent neighbour keeps them."""
    H = np.array([[1, 0.1, 5], [0, 1, 3], [0, 0, 1.0]])
    warped = cv2.warpPerspective(image, H, image.shape[::-1])
    kp0, kp1 = extract(image, "sift", 1024), extract(warped, "sift", 1024)
    before, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors, 0.8)
    twice_desc = np.concatenate([kp1.descriptors, kp1.descriptors])
    twice_xy = np.concatenate([kp1.xy, kp1.xy + 1.0])
    assert len(nearest_neighbor_match(kp0.descriptors, twice_desc, 0.8)[0]) == 0
    after, scores = fginn_match(kp0.descriptors, twice_desc, kp0.xy, twice_xy)
    assert len(after) >= 0.9 * len(before) > 50
    def precision(m, xy1):
        return np.mean(np.linalg.norm(warp_points(kp0.xy[m[:, 0]], H) - xy1[m[:, 1]], axis=1) < 3)
    assert precision(after, twice_xy) >= precision(before, kp1.xy) - 0.02 > 0.9
    assert ((scores > 0) & (scores <= 1)).all()
    # without duplicates it is Lowe's test, but for keypoints SIFT found twice at one place (two orientations)
    same, _ = fginn_match(kp0.descriptors, kp1.descriptors, kp0.xy, kp1.xy)
    assert set(map(tuple, before)) <= set(map(tuple, same)) and len(same) <= 1.1 * len(before)


def test_strongest_and_of_image_keep_views_consistent(image):
    views = detect_views(image, views_of((1.0, 2.0)), 300)
    merged = ViewKeypoints.concatenate([ViewKeypoints.of_image(extract(image, "sift", 100)), views])
    assert len(merged.views) == 1 + len(views.views) and merged.view.max() == len(merged.views) - 1
    assert np.array_equal(merged.affine[0], np.eye(2, 3))
    best = merged.subset(merged.strongest_index(200))
    assert len(best) == 200 and best.keypoints.score.min() >= np.sort(merged.keypoints.score)[-200]


def test_refinement_through_known_maps(tilted):
    """The refiner warps image 0's patch through the maps it is given: the true linear map moves
    noisy matches of a tilt-4 pair onto the truth; maps of the wrong shape are one line."""
    image, warped, H = tilted
    rng = np.random.default_rng(0)
    points0 = np.stack([rng.uniform(200, 440, 80), rng.uniform(150, 330, 80)], 1)
    truth = warp_points(points0, H)
    noisy = truth + rng.uniform(-1.5, 1.5, truth.shape)
    refiner = load_refiner("refiner")
    refined = refiner.refine(image, warped, points0, noisy.copy(), np.tile(H[:2, :2], (len(points0), 1, 1)))
    assert np.median(np.linalg.norm(refined - truth, axis=1)) < 0.5 * np.median(np.linalg.norm(noisy - truth, axis=1))
    with pytest.raises(PygmatchError, match="maps must be"):
        refiner.refine(image, warped, points0, noisy, np.eye(2))
