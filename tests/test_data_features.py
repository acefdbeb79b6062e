import numpy as np
import pytest

from pygmatch.errors import PygmatchError
from pygmatch.data.features import detect, extract


def test_sift_on_a_real_image(image):
    kp = extract(image, "sift", 512)
    assert 400 <= len(kp) <= 512
    assert kp.descriptors.shape == (len(kp), 128) and kp.descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(kp.descriptors, axis=1), 1, atol=1e-4)  # rootSIFT is unit-norm
    assert (kp.descriptors >= 0).all()
    assert (kp.xy[:, 0] < 640).all() and (kp.xy[:, 1] < 480).all() and (kp.xy >= 0).all()
    assert (kp.scale > 0).all() and (np.abs(kp.ori) <= 2 * np.pi).all()
    assert (np.diff(kp.score) <= 0).all()  # strongest first


def test_orb_l2_equals_hamming(image):
    kp = extract(image, "orb", 300)
    assert 0 < len(kp) <= 300 and kp.descriptors.shape[1] == 256
    bits = kp.descriptors > 0
    hamming = (bits[0] != bits[1]).sum()
    assert np.sum((kp.descriptors[0] - kp.descriptors[1]) ** 2) == pytest.approx(hamming / 64, rel=1e-5)


def test_blank_image_has_no_keypoints():
    kp = extract(np.full((480, 640), 128, np.uint8), "sift")
    assert len(kp) == 0 and kp.descriptors.shape == (0, 128)


def test_unknown_features():
    with pytest.raises(PygmatchError, match="choose from sift, orb, asift"):
        extract(np.zeros((10, 10), np.uint8), "surf")


def test_asift_finds_matches_where_sift_does_not_repeat(image):
    """A strong tilt (the image squeezed 5 times along one axis and turned): SIFT's keypoints do not
    repeat, ASIFT's simulated views find the correspondences, in the image's own pixels."""
    import cv2

    from pygmatch.data.geometry import warp_points
    from pygmatch.matching.nearest import match_nn_ratio

    h, w = image.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
    H = np.diag([1.0, 0.2, 1.0]) @ np.vstack([turn, [0, 0, 1]])  # tilt 5
    H = np.array([[1, 0, 0], [0, 1, h * 0.3], [0, 0, 1]]) @ H  # keep the squeezed image in view
    warped = cv2.warpPerspective(image, H, (w, h))
    correct = {}
    for features in ("sift", "asift"):
        kp0, kp1 = extract(image, features, 4096), extract(warped, features, 4096)
        m, _ = match_nn_ratio(kp0, kp1)
        err = np.linalg.norm(warp_points(kp0.xy[m[:, 0]], H) - kp1.xy[m[:, 1]], axis=1)
        correct[features] = int((err < 3).sum())
    assert kp1.descriptors.shape[1] == 128 and (kp1.xy[:, 0] < w).all() and (kp1.xy[:, 1] < h).all()
    assert correct["asift"] >= 3 * max(correct["sift"], 5), correct


def test_the_graph_network_refuses_asift_keypoints():
    from pygmatch.pipeline import Pipeline

    with pytest.raises(PygmatchError, match="asift"):
        Pipeline.load("default", features="asift")
    assert Pipeline.load("nn-ratio", features="asift").extractor.features == "asift"


def test_a_lower_contrast_threshold_fills_a_budget_with_the_same_strongest_keypoints(image):
    """At COLMAP's threshold (0.02) an image finds many more keypoints than at OpenCV's (0.04);
    a budget that both fill gets the same keypoints (only equal responses may come in another order)."""
    strict, loose = detect(image, "sift", 100_000, 0.04), detect(image, "sift", 100_000, 0.02)
    assert len(loose) > 1.3 * len(strict)
    budget = len(strict) // 2
    a, b = detect(image, "sift", budget, 0.04), detect(image, "sift", budget, 0.02)
    ia, ib = (np.lexsort((k.ori, k.scale, k.xy[:, 1], k.xy[:, 0])) for k in (a, b))
    assert len(a) == len(b) == budget
    np.testing.assert_array_equal(a.xy[ia], b.xy[ib])
    np.testing.assert_array_equal(a.descriptors[ia], b.descriptors[ib])
    np.testing.assert_array_equal(a.score, b.score)


@pytest.mark.parametrize("threshold", [0, -0.1, 1, float("nan"), "0.02", True])
def test_bad_contrast_thresholds_are_refused(threshold):
    with pytest.raises(PygmatchError, match="contrast threshold must be a number in \\(0, 1\\)"):
        extract(np.zeros((10, 10), np.uint8), "sift", 10, threshold)
