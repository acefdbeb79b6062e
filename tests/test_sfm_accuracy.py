"""Camera accuracy against true cameras: the similarity alignment is exact on real cameras moved by a
known similarity, and the errors it reports are those put in."""
from __future__ import annotations

import numpy as np
import pytest

from pygmatch.data.scenes import read_colmap_text
from pygmatch.errors import PygmatchError
from pygmatch.data.epipolar import rotation_angle
from pygmatch.sfm.accuracy import camera_errors, fit_similarity, scene_cameras

from .conftest import ROOT

LUND_DOOR = ROOT.parent / "shared" / "data" / "pose" / "lund_door"


def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


@pytest.fixture(scope="module")
def truth():
    if not (LUND_DOOR / "gt" / "images.txt").is_file():
        pytest.skip(f"{LUND_DOOR}: the development scene is not here")
    return scene_cameras(read_colmap_text(LUND_DOOR / "gt"))


def moved(cameras, s, R, t):
    """The same cameras in a world moved by X' = s R X + t (what a reconstruction's gauge does)."""
    return {n: (R_c @ R.T, s * R @ C + t) for n, (R_c, C) in cameras.items()}


def test_a_similarity_is_recovered_exactly(truth):
    assert len(truth) == 12
    s, R, t = 0.37, rotation([1, 2, -0.5], 71), np.array([3.0, -1.0, 12.0])
    fit = fit_similarity(np.array([c[1] for c in truth.values()]), np.array([c[1] for c in moved(truth, s, R, t).values()]))
    np.testing.assert_allclose(fit[0], s, rtol=1e-9)
    np.testing.assert_allclose(fit[1], R, atol=1e-9)
    np.testing.assert_allclose(fit[2], t, atol=1e-8)
    e = camera_errors(moved(truth, s, R, t), truth)
    assert e["aligned"] == 12 and e["centre_max"] < 1e-8 and e["rotation_max_deg"] < 1e-5 and e["scene_size"] > 0


def test_errors_put_in_are_the_errors_reported(truth):
    s, R, t = 2.5, rotation([0, 0, 1], -30), np.array([1.0, 2.0, 3.0])
    estimate = moved(truth, s, R, t)
    names = sorted(truth)
    R0, C0 = estimate[names[0]]
    estimate[names[0]] = (rotation([0, 1, 0], 4.0) @ R0, C0)  # one camera turned by 4 degrees
    e = camera_errors(estimate, truth)
    # the world rotation is fitted to all 12 orientations: the turned camera keeps about 11/12 of its 4 degrees
    assert e["per_image"][names[0]][1] == pytest.approx(4.0 * 11 / 12, abs=0.01) and e["rotation_max_deg"] == e["per_image"][names[0]][1]
    assert e["rotation_median_deg"] == pytest.approx(4.0 / 12, abs=0.01) and e["centre_max"] < 1e-8
    estimate = moved(truth, s, R, t)
    R1, C1 = estimate[names[1]]
    estimate[names[1]] = (R1, C1 + s * R @ np.array([0.1, 0, 0]) * e["scene_size"])  # one centre off by a tenth of the scene
    e = camera_errors(estimate, truth)
    worst = max(e["per_image"], key=lambda n: e["per_image"][n][0])
    assert worst == names[1] and 0.05 * e["scene_size"] < e["centre_max"] < 0.1 * e["scene_size"]  # the fit spreads some of it
    assert e["centre_median"] < 0.02 * e["scene_size"]
    del estimate[names[2]]  # an image the reconstruction did not register is left out
    assert camera_errors(estimate, truth)["aligned"] == 11


def test_too_few_cameras_are_one_line(truth):
    few = dict(list(truth.items())[:2])
    with pytest.raises(PygmatchError, match="2 reconstructed images have a true camera; at least 3"):
        camera_errors(few, truth)
    assert rotation_angle(rotation([1, 1, 1], 123)) == pytest.approx(123)


def test_scene_windows_cover_the_images_in_order():
    """``benchmarks.sfm_subsets`` cuts a scene into windows of consecutive images, the last one
    ending at the scene's last image."""
    from benchmarks.sfm_subsets import windows

    names = [f"{k:02d}.jpg" for k in range(12)]
    assert [w[0] for w in windows(names, 8, 2)] == ["00.jpg", "02.jpg", "04.jpg"]
    assert [w[0] for w in windows(names, 7, 4)] == ["00.jpg", "04.jpg", "05.jpg"]  # the last window ends at the last image
    assert all(len(w) == 7 and names.index(w[-1]) - names.index(w[0]) == 6 for w in windows(names, 7, 1))
    assert windows(names, 12, 1) == [names]
    for size in (2, 13):
        with pytest.raises(ValueError, match="--size"):
            windows(names, size, 1)
