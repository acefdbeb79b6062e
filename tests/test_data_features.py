import numpy as np
import pytest

from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract


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
    with pytest.raises(PygmatchError, match="choose from sift, orb"):
        extract(np.zeros((10, 10), np.uint8), "surf")
