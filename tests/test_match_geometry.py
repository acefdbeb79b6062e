"""``pygmatch match A B --geometry homography|fundamental|essential``: the model written to --json
against the truth (a known homography of an embedded photograph; the true cameras of a lund_door
pair), where the intrinsics come from (a file, EXIF, the image size), and bad input in one line."""
import json

import cv2
import numpy as np
import pytest

from pygmatch.commands.match import main
from pygmatch.data import list_images, read_gray
from pygmatch.data.epipolar import intrinsics_from_exif, intrinsics_from_size, read_intrinsics
from pygmatch.data.geometry import corner_error, sample_homography
from pygmatch.data.scenes import load_scene, relative_pose
from pygmatch.evaluation.pose import pose_error

from .conftest import one_line_error, run_command
from .test_data_epipolar import LUND_DOOR, epipolar_distance, true_fundamental


def pygmatch(argv, capsys):
    return run_command(main, ["match", *argv], capsys)


@pytest.fixture(scope="module")
def warped(embedded_dir, tmp_path_factory):
    """An embedded photograph and its warp by a known homography, as files."""
    folder = tmp_path_factory.mktemp("warped")
    image = read_gray(list_images(embedded_dir)[0])
    H = sample_homography((640, 480), np.random.default_rng(5), 1.0)
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "b.png"), cv2.warpPerspective(image, H, (640, 480)))
    return folder / "a.png", folder / "b.png", H


@pytest.fixture(scope="module")
def lund_door():
    if not LUND_DOOR.is_dir():
        pytest.skip("no ../shared/data/pose/lund_door")
    scene = load_scene(LUND_DOOR)
    a, b = scene.images["DSC_0001.JPG"], scene.images["DSC_0003.JPG"]
    return scene.path(a.name), scene.path(b.name), a, b


@pytest.mark.parametrize("flags", [["--homography"], ["--geometry", "homography"]])
def test_homography(warped, tmp_path, capsys, flags):
    a, b, H = warped
    code, stdout, err = pygmatch([a, b, "--method", "nn-ratio", *flags, "--out", tmp_path / "m.png", "--json", tmp_path / "m.json"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["geometry"] == "homography" and record["ransac_px"] == 3.0 and record["estimator"] == "opencv"
    assert corner_error(np.array(record["homography"]), H, (640, 480)) < 1.5
    assert len(record["inliers"]) == len(record["matches"]) and sum(record["inliers"]) > 100
    assert f"homography: {sum(record['inliers'])} inliers at 3 px" in stdout
    assert cv2.imread(str(tmp_path / "m.png")) is not None


def test_fundamental_of_a_real_pair(lund_door, tmp_path, capsys):
    path0, path1, im0, im1 = lund_door
    code, stdout, err = pygmatch([path0, path1, "--method", "nn-ratio", "--geometry", "fundamental", "--out", tmp_path / "m.png",
                                  "--json", tmp_path / "m.json"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "m.json").read_text())
    F, inliers = np.array(record["fundamental"]), np.array(record["inliers"])
    assert record["ransac_px"] == 1.0 and inliers.sum() > 0.5 * len(inliers) > 50
    p0, p1 = np.array(record["points0"])[inliers], np.array(record["points1"])[inliers]
    assert np.median(epipolar_distance(F, p0, p1)) < 1.0  # the model fits its inliers ...
    assert np.median(epipolar_distance(true_fundamental(im0.K, im1.K, *relative_pose(im0, im1)), p0, p1)) < 1.5  # ... and the truth
    assert "fundamental: " in stdout and "inliers at 1 px" in stdout


def test_essential_with_intrinsics_from_a_file_from_exif_and_from_the_size(lund_door, tmp_path, capsys):
    path0, path1, im0, im1 = lund_door
    R_true, t_true = relative_pose(im0, im1)
    K = tmp_path / "K.txt"
    np.savetxt(K, im0.K)  # one camera for both photographs
    errors = {}
    for intrinsics in (["--intrinsics", K], ["--intrinsics", K, K], [], ["--intrinsics", "size"]):
        out = tmp_path / f"m{len(errors)}.json"
        code, stdout, err = pygmatch([path0, path1, "--geometry", "essential", *intrinsics, "--out", tmp_path / "m.png", "--overwrite",
                                      "--json", out], capsys)
        assert code == 0, err
        record = json.loads(out.read_text())
        errors[" ".join(map(str, intrinsics[1:])) or "default"] = pose_error(np.array(record["R"]), np.array(record["t"]), R_true, t_true)
        assert len(record["inliers"]) == len(record["matches"]) and record["geometry"] == "essential"
        if not intrinsics:  # the default: EXIF (43 mm equivalent on a 1936-pixel side), said in the output and in the JSON
            assert "intrinsics of image 0: EXIF 35 mm-equivalent focal length 43 mm, f = 2312.4 px" in stdout
            assert record["K1"] == intrinsics_from_exif(path1, (1296, 1936)).tolist()
        elif intrinsics[1] == "size":
            assert "guessed from the image size (1.2 x the longer side), f = 2323.2 px" in stdout
            assert record["K0"] == intrinsics_from_size((1296, 1936)).tolist()
        else:
            np.testing.assert_allclose(record["K0"], im0.K) and np.testing.assert_allclose(record["K1"], im0.K)
    assert errors[str(K)] == errors[f"{K} {K}"] < 2.0  # the true intrinsics: within 2 degrees
    assert errors["default"] < 5.0 and errors["size"] < 5.0  # a focal length 5 % off still gives a usable pose


def test_bad_input_is_one_line(warped, tmp_path, capsys):
    a, b, _ = warped
    out = ["--out", tmp_path / "m.png"]
    eight = tmp_path / "eight.txt"
    eight.write_text("1 0 0\n0 1 0\n0 0\n")
    negative = tmp_path / "negative.txt"
    negative.write_text("-500 0 320\n0 500 240\n0 0 1\n")
    cases = [
        (["--geometry", "fundamental", "--intrinsics", "size"], "--intrinsics is for --geometry essential"),
        (["--geometry", "essential", "--intrinsics", eight], f"{eight}: intrinsics must be 9 numbers (the 3×3 matrix K, three rows of three), "
                                                             f"found 8"),
        (["--geometry", "essential", "--intrinsics", negative], f"{negative}: not a camera matrix"),
        (["--geometry", "essential", "--intrinsics", tmp_path / "none.txt"], f"{tmp_path / 'none.txt'}: missing"),
        (["--geometry", "essential", "--intrinsics", "exif"], f"{a}: no EXIF 35 mm-equivalent focal length"),  # a PNG has none
        (["--geometry", "essential", "--intrinsics", "size", "size", "size"], "--intrinsics: one K for both images or one per image, got 3"),
        (["--geometry", "essential", "--homography"], "argument --homography: not allowed with argument --geometry"),
        (["--geometry", "affine"], "argument --geometry: invalid choice: 'affine'"),
        (["--geometry", "fundamental", "--ransac-px", "0"], "--ransac-px must be > 0"),
    ]
    for flags, message in cases:
        code, stdout, err = pygmatch([a, b, "--method", "nn", *out, *flags], capsys)
        assert code == 2 and message in one_line_error(err), (flags, err)
    assert not (tmp_path / "m.png").exists()


def test_read_intrinsics_accepts_comments_and_commas(tmp_path):
    path = tmp_path / "K.txt"
    path.write_text("# fx 0 cx\n500, 0, 320\n0 510 240  # fy cy\n0 0 1\n")
    np.testing.assert_array_equal(read_intrinsics(path), [[500, 0, 320], [0, 510, 240], [0, 0, 1]])


def test_selection_picks_the_keypoints_matched(warped, tmp_path, capsys):
    """``--selection``: below 4096 keypoints the pipelines spread SIFT's; ``strongest`` keeps the
    detector's largest responses, the keypoints ``extract`` returns."""
    from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, extract

    a, b, _ = warped
    kept = {}
    for flags in ([], ["--selection", "strongest"], ["--selection", "spread"]):
        out = tmp_path / f"{'-'.join(flags) or 'default'}.json"
        code, _, err = pygmatch([a, b, "--method", "nn-ratio", "--max-keypoints", 300, *flags, "--json", out, "--out", out.with_suffix(".png")],
                                capsys)
        assert code == 0, err
        kept[tuple(flags)] = np.array(json.loads(out.read_text())["keypoints0"])
    assert np.array_equal(kept[()], kept[("--selection", "spread")])
    assert np.allclose(kept[("--selection", "strongest")], extract(read_gray(a, None), "sift", 300, DEFAULT_CONTRAST_THRESHOLD).xy, atol=1e-3)
    assert not np.array_equal(kept[()], kept[("--selection", "strongest")])
