import math

import numpy as np
import pytest

from pygmatch.errors import PygmatchError
from pygmatch.data.geometry import corner_error, image_overlap, sample_homography, warp_image, warp_points

SIZE = (640, 480)


@pytest.mark.parametrize("difficulty", [0.5, 1.0, 2.0])
def test_sampled_homographies_keep_the_content_visible(difficulty):
    rng = np.random.default_rng(0)
    centre = np.array([[320.0, 240.0]])
    for _ in range(100):
        H = sample_homography(SIZE, rng, difficulty)
        assert image_overlap(H, SIZE) >= 0.5
        c = warp_points(centre, H)[0]
        assert 0 <= c[0] < 640 and 0 <= c[1] < 480  # the image centre stays in view


def test_difficulty_scales_the_distortion():
    def mean_corner_shift(d):
        rng = np.random.default_rng(1)
        return np.mean([corner_error(sample_homography(SIZE, rng, d), np.eye(3), SIZE) for _ in range(200)])

    assert mean_corner_shift(0.0) == pytest.approx(0.0, abs=1e-9)
    assert 1.5 * mean_corner_shift(1.0) < mean_corner_shift(2.0)


def test_negative_difficulty_is_rejected():
    with pytest.raises(PygmatchError, match="difficulty"):
        sample_homography(SIZE, np.random.default_rng(0), -1)


def test_warp_points_round_trips():
    H = sample_homography(SIZE, np.random.default_rng(3), 1.5)
    pts = np.random.default_rng(4).uniform(0, 640, (50, 2))
    back = warp_points(warp_points(pts, H), np.linalg.inv(H))
    np.testing.assert_allclose(back, pts, atol=1e-6)


def test_warp_image_agrees_with_warp_points():
    image = np.zeros((480, 640), np.uint8)
    image[100:104, 200:204] = 255  # a bright square centred at (201.5, 101.5)
    H = np.array([[1, 0, 30.0], [0, 1, -20.0], [0, 0, 1]])
    warped = warp_image(image, H)
    ys, xs = np.nonzero(warped > 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], warp_points([[201.5, 101.5]], H)[0], atol=0.5)


def test_corner_error_values():
    H = np.eye(3)
    shift = np.array([[1, 0, 3.0], [0, 1, 4.0], [0, 0, 1]])
    assert corner_error(H, H, SIZE) == 0
    assert corner_error(shift, H, SIZE) == pytest.approx(5.0)
    assert corner_error(None, H, SIZE) == math.inf
    assert corner_error(np.full((3, 3), np.nan), H, SIZE) == math.inf
