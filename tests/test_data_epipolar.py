"""Two-view geometry beyond homographies (``pygmatch.data.epipolar``, ``MatchResult.fundamental`` /
``MatchResult.pose``): both estimators on exact projections with outliers, then on a real pair of the
development scene ``lund_door`` (when present) against its true cameras, and bad input."""
from importlib.util import find_spec

import numpy as np
import pytest

from pygmatch import Pipeline, RelativePose
from pygmatch.data.epipolar import epipolar_distance, estimate_fundamental, estimate_relative_pose, pixel_to_camera
from pygmatch.data.scenes import load_scene, relative_pose
from pygmatch.errors import PygmatchError
from pygmatch.evaluation.pose import pose_error
from pygmatch.pipeline import MatchResult

from .conftest import ROOT
from .test_eval_pose import project, two_views

LUND_DOOR = ROOT.parent / "shared" / "data" / "pose" / "lund_door"
ESTIMATORS = ["opencv", pytest.param("poselib", marks=pytest.mark.skipif(find_spec("poselib") is None, reason="no poselib"))]


def true_fundamental(K0, K1, R, t):
    """F with x1ᵀ F x0 = 0 in pygmatch's pixels (centres at integers; K in COLMAP's convention)."""
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    return shift.T @ np.linalg.inv(K1).T @ tx @ R @ np.linalg.inv(K0) @ shift


def distance_to_line1(F, p0, p1):
    """Distance (px) of each p1 from the epipolar line F p0 in image 1."""
    lines = np.c_[p0, np.ones(len(p0))] @ F.T
    return np.abs((np.c_[p1, np.ones(len(p1))] * lines).sum(1)) / np.linalg.norm(lines[:, :2], axis=1)


@pytest.fixture(scope="module")
def synthetic():
    """300 exact projections of 3D points into two cameras; 0.3 px noise, the first 60 replaced by outliers."""
    rng = np.random.default_rng(0)
    X, (R0, t0, K0), (R1, t1, K1), (R, t) = two_views(rng)
    p0, p1 = project(X, R0, t0, K0), project(X, R1, t1, K1)
    noisy = p1 + rng.normal(0, 0.3, p1.shape)
    noisy[:60] = rng.uniform([0, 0], [640, 480], (60, 2))
    return p0, p1, noisy, K0, K1, R, t


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_estimators_on_projections_with_outliers(synthetic, estimator):
    p0, p1, noisy, K0, K1, R, t = synthetic
    F, inliers = estimate_fundamental(p0, noisy, 1.0, estimator)
    assert inliers.dtype == bool and inliers.shape == (300,)
    assert inliers[:60].sum() <= 3 and inliers[60:].mean() > 0.8  # the outliers out, most of the rest in
    assert np.median(distance_to_line1(F, p0[60:], p1[60:])) < 0.5  # the exact correspondences on their lines
    assert np.linalg.norm(F) == pytest.approx(1)
    pose = estimate_relative_pose(p0, noisy, K0, K1, 1.0, estimator)
    assert isinstance(pose, RelativePose) and pose_error(pose.R, pose.t, R, t) < 1.0
    assert np.dot(pose.t, t / np.linalg.norm(t)) > 0.999  # the sign too (cheirality), unit length
    assert pose.inliers[:60].sum() <= 3 and pose.num_inliers > 200
    n0, n1 = pixel_to_camera(p0[60:], K0), pixel_to_camera(p1[60:], K1)  # E = [t]x R on normalised coordinates
    residual = np.abs(np.sum(np.c_[n1, np.ones(240)] * (np.c_[n0, np.ones(240)] @ pose.E.T), 1))
    assert np.median(residual) < 1e-3
    assert estimate_fundamental(p0[:7], p1[:7], 1.0, estimator) is None  # too few matches
    assert estimate_relative_pose(p0[:4], p1[:4], K0, K1, 1.0, estimator) is None


@pytest.fixture(scope="module")
def lund_door_pair():
    if not LUND_DOOR.is_dir():
        pytest.skip("no ../shared/data/pose/lund_door")
    scene = load_scene(LUND_DOOR)
    a, b = "DSC_0001.JPG", "DSC_0003.JPG"
    res = Pipeline.load("default").match(scene.path(a), scene.path(b))
    return res, scene.images[a], scene.images[b]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_geometry_of_a_real_pair(lund_door_pair, estimator):
    """The default pipeline's matches of two lund_door photographs: the fundamental matrix's inliers
    lie on the true epipolar lines (from the true cameras), and the relative pose is the true one
    within 2 degrees."""
    res, im0, im1 = lund_door_pair
    R_true, t_true = relative_pose(im0, im1)
    F, inliers = res.fundamental(estimator=estimator)
    assert inliers.shape == (len(res),) and inliers.sum() > 0.5 * len(res) > 100
    truth = distance_to_line1(true_fundamental(im0.K, im1.K, R_true, t_true), res.points0[inliers], res.points1[inliers])
    assert np.median(truth) < 1.5
    pose = res.pose(im0.K, im1.K, estimator=estimator)
    assert pose_error(pose.R, pose.t, R_true, t_true) < 2.0 and pose.num_inliers > 0.5 * len(res)


def test_bad_input(synthetic):
    p0, p1, _, K0, K1, _, _ = synthetic
    with pytest.raises(PygmatchError, match="K1: not a camera matrix"):
        estimate_relative_pose(p0, p1, K0, -K1)
    with pytest.raises(PygmatchError, match="K0: intrinsics must be a finite 3×3 matrix, got shape"):
        estimate_relative_pose(p0, p1, K0[:2], K1)
    with pytest.raises(PygmatchError, match="same length"):
        estimate_fundamental(p0, p1[:-1])
    with pytest.raises(PygmatchError, match="unknown fundamental-matrix estimator 'magsac'"):
        estimate_fundamental(p0, p1, estimator="magsac")
    with pytest.raises(PygmatchError, match="unknown relative-pose estimator"):
        estimate_relative_pose(p0, p1, K0, K1, estimator="magsac")


def test_match_result_geometry_bad_threshold(synthetic):
    p0, p1, _, K0, K1, _, _ = synthetic
    result = MatchResult(None, None, np.stack([np.arange(300)] * 2, 1), np.ones(300, np.float32), p0, p1)
    assert result.fundamental()[1].all() and result.pose(K0, K1).num_inliers > 290
    for bad in (0, -1.0, "1", True):
        with pytest.raises(PygmatchError, match="threshold must be a number of pixels > 0"):
            result.fundamental(bad)
        with pytest.raises(PygmatchError, match="threshold must be a number of pixels > 0"):
            result.pose(K0, K1, bad)


def test_epipolar_distance_in_pixels_matched_and_pairwise():
    """A camera moved sideways: the epipolar lines are the image rows. A point of image 1 on its
    row is 0 px away, one moved 3 px down 3 px (both ways, the lines of either image being rows);
    the pairwise distances hold the matched ones on their diagonal."""
    F = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # x1ᵀ F x0 = y0 − y1
    xy0 = np.array([[10.0, 20.0], [300.0, 40.0], [50.0, 400.0]])
    xy1 = xy0 + np.array([[35.0, 0.0], [-80.0, 3.0], [0.0, -7.5]])
    np.testing.assert_allclose(epipolar_distance(F, xy0, xy1), [0.0, 3.0, 7.5])
    pairwise = epipolar_distance(F, xy0, xy1, pairwise=True)
    assert pairwise.shape == (3, 3)
    np.testing.assert_allclose(np.diag(pairwise), [0.0, 3.0, 7.5])
    np.testing.assert_allclose(pairwise[0, 1], 23.0)  # row 20 against row 43
