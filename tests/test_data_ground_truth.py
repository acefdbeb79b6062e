import numpy as np

from pygmatch.data.ground_truth import IGNORE, UNMATCHED, ground_truth_matches, reprojection_error

SHIFT = np.array([[1, 0, 10.0], [0, 1, 0.0], [0, 0, 1]])  # image 1 = image 0 moved 10 px right


def test_known_answers():
    xy0 = np.array([[0, 0], [100, 100], [200, 200], [300, 300], [400, 400]], float)
    xy1 = np.array([
        [11, 0],        # 1 px from kp0[0] -> match
        [110, 104],     # 4 px from kp0[1] -> ignore (between 3 and 5)
        [500, 500],     # nobody near -> unmatched
        [312.5, 300],   # 2.5 px from kp0[3] -> match
        [313.0, 300],   # 3 px from kp0[3] but not its nearest -> its nearest reprojection is 3 px -> ignore
    ])
    m0, m1 = ground_truth_matches(xy0, xy1, SHIFT)
    np.testing.assert_array_equal(m0, [0, IGNORE, UNMATCHED, 3, UNMATCHED])
    np.testing.assert_array_equal(m1, [0, IGNORE, UNMATCHED, 3, IGNORE])
    np.testing.assert_allclose(reprojection_error(xy0[:1], xy1[:1], SHIFT), [[1.0]])


def test_thresholds_are_configurable():
    xy0, xy1 = np.array([[0.0, 0.0]]), np.array([[14.0, 0.0]])  # 4 px after the shift
    assert ground_truth_matches(xy0, xy1, SHIFT)[0][0] == IGNORE
    assert ground_truth_matches(xy0, xy1, SHIFT, match_px=5, unmatched_px=6)[0][0] == 0
    assert ground_truth_matches(xy0, xy1, SHIFT, match_px=1, unmatched_px=2)[0][0] == UNMATCHED


def test_empty_sets():
    m0, m1 = ground_truth_matches(np.zeros((0, 2)), np.ones((3, 2)), SHIFT)
    assert m0.shape == (0,) and (m1 == UNMATCHED).all()
