"""``python -m eval.pose``: the COLMAP text and binary readers, SuperGlue-style pair files, the pose
error on exact correspondences, the command end-to-end on the development scene ``lund_door`` (when
present; OpenCV and PoseLib) and its bad inputs."""
import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from eval.pose import main
from pygmatch.data.scenes import (load_scene, load_scenes, quaternion_to_rotation, read_colmap_binary, read_colmap_model, read_colmap_text,
                                  relative_pose)
from pygmatch.errors import PygmatchError
from pygmatch.data.epipolar import estimate_relative_pose
from pygmatch.evaluation.pose import evaluate_pose, pose_error, rotation_error, translation_error

from .conftest import ROOT, one_line_error, run_command

LUND_DOOR = ROOT.parent / "shared" / "data" / "pose" / "lund_door"
POSE_MINI = ROOT / "pygmatch" / "datasets" / "pose-mini"  # the embedded scene: 4 lund_door photographs

CAMERAS = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
1 SIMPLE_PINHOLE 640 480 500 320 240
2 PINHOLE 640 480 510 520 321 241
3 SIMPLE_RADIAL 1296 1936 2435.38 648 968 -0.0336422
4 RADIAL 800 600 700 400 300 0.01 -0.002
5 OPENCV 800 600 710 720 401 299 0.01 0.02 0.001 0.002
"""
C, S = math.cos(math.radians(45)), math.sin(math.radians(45))  # quaternion of 90 degrees about z
IMAGES = f"""# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME
1 1 0 0 0 0 0 0 1 a.jpg

2 {C} 0 0 {S} 1 2 3 2 b.jpg
10.5 20.5 -1 11 20 30
3 2 0 0 0 0.5 0 0 3 c.jpg

4 1 0 0 0 0 0 1 4 d.jpg

5 1 0 0 0 0 1 0 5 e.jpg

"""


def write_model(folder, cameras=CAMERAS, images=IMAGES, image_files=True):
    (folder / "gt").mkdir(parents=True)
    (folder / "gt" / "cameras.txt").write_text(cameras)
    (folder / "gt" / "images.txt").write_text(images)
    (folder / "images").mkdir()
    if image_files:
        for name in "abcde":
            cv2.imwrite(str(folder / "images" / f"{name}.jpg"), np.full((48, 64), 128, np.uint8))
    return folder


def test_colmap_text_reader(tmp_path):
    images = read_colmap_text(write_model(tmp_path / "scene") / "gt")
    assert list(images) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"]
    np.testing.assert_allclose(images["a.jpg"].K, [[500, 0, 320], [0, 500, 240], [0, 0, 1]])
    np.testing.assert_allclose(images["b.jpg"].K, [[510, 0, 321], [0, 520, 241], [0, 0, 1]])
    np.testing.assert_allclose(images["c.jpg"].K, [[2435.38, 0, 648], [0, 2435.38, 968], [0, 0, 1]])  # distortion ignored
    np.testing.assert_allclose(images["d.jpg"].K, [[700, 0, 400], [0, 700, 300], [0, 0, 1]])
    np.testing.assert_allclose(images["e.jpg"].K, [[710, 0, 401], [0, 720, 299], [0, 0, 1]])
    assert [images[n].camera.model for n in images] == ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"]
    assert images["c.jpg"].camera.width == 1296 and images["c.jpg"].camera.height == 1936
    b = images["b.jpg"]
    assert b.id == 2 and b.camera.id == 2
    np.testing.assert_allclose(b.R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(b.t, [1, 2, 3])
    np.testing.assert_allclose(images["c.jpg"].R, np.eye(3), atol=1e-12)  # a quaternion of norm 2, normalised
    np.testing.assert_allclose(images["c.jpg"].t, [0.5, 0, 0])
    R, t = relative_pose(images["a.jpg"], images["b.jpg"])  # a at the world origin: the relative pose is b's own
    np.testing.assert_allclose(R, b.R, atol=1e-12)
    np.testing.assert_allclose(t, b.t)


def test_scene_pairs(tmp_path):
    scene = load_scene(write_model(tmp_path / "scene"))
    assert scene.name == "scene" and len(scene.pairs) == 10 and scene.pairs[0] == ("a.jpg", "b.jpg")
    assert len(load_scene(tmp_path / "scene", max_pairs=3).pairs) == 3
    (tmp_path / "scene" / "pairs.txt").write_text("# a comment\nc.jpg a.jpg\n\ne.jpg d.jpg extra columns ignored\n")
    assert load_scene(tmp_path / "scene").pairs == [("c.jpg", "a.jpg"), ("e.jpg", "d.jpg")]
    assert [s.name for s in load_scenes(tmp_path)] == ["scene"]  # a folder of scene folders
    assert [s.name for s in load_scenes(tmp_path / "scene")] == ["scene"]  # one scene folder


def look_at(center, target=(0.0, 0.0, 5.0)):
    """World-to-camera (R, t) of a camera at ``center`` looking at ``target``, y down."""
    z = np.asarray(target, float) - center
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return R, -R @ center


def project(X, R, t, K):
    """Pixel positions in pygmatch's convention (pixel centres at integers: COLMAP's minus 0.5)."""
    x = (K @ (X @ R.T + t).T).T
    return x[:, :2] / x[:, 2:] - 0.5


def two_views(rng):
    """300 3D points and two cameras looking at them: ``X, (R0, t0, K0), (R1, t1, K1), (R, t)`` with
    the true relative pose R, t."""
    X = rng.uniform([-2, -2, 4], [2, 2, 7], size=(300, 3))
    K0 = np.array([[800.0, 0, 320], [0, 800, 240], [0, 0, 1]])
    K1 = np.array([[700.0, 0, 330], [0, 710, 250], [0, 0, 1]])
    R0, t0 = look_at(np.array([-0.5, 0.1, 0.0]))
    R1, t1 = look_at(np.array([0.8, -0.2, 0.3]))
    return X, (R0, t0, K0), (R1, t1, K1), (R1 @ R0.T, t1 - R1 @ R0.T @ t0)


def test_pose_error_exact_correspondences():
    X, (R0, t0, K0), (R1, t1, K1), (R_true, t_true) = two_views(np.random.default_rng(0))
    est = estimate_relative_pose(project(X, R0, t0, K0), project(X, R1, t1, K1), K0, K1)
    assert pose_error(est.R, est.t, R_true, t_true) < 0.1
    assert est.num_inliers >= 290 and est.inliers.shape == (300,)
    # the two parts of the error
    Rz = quaternion_to_rotation(math.cos(math.radians(5)), 0, 0, math.sin(math.radians(5)))  # 10 degrees about z
    assert rotation_error(Rz, np.eye(3)) == pytest.approx(10)
    assert translation_error(np.array([1.0, 0, 0]), np.array([-1.0, 0, 0])) == pytest.approx(0)  # up to sign
    assert translation_error(np.array([1.0, 0, 0]), np.array([1.0, 1.0, 0])) == pytest.approx(45)
    assert estimate_relative_pose(np.zeros((4, 2)), np.zeros((4, 2)), K0, K1) is None


class ExactPipeline:
    """A stand-in pipeline whose "matches" are the exact projections of 3D points: the whole
    evaluation path (scene reader, relative pose, pixel convention, RANSAC, error) on exact data."""

    class extractor:
        features, max_keypoints, resize = "sift", 1024, 1024

    def __init__(self, X, poses):
        self.X, self.poses = X, poses

    def extract(self, path):
        return SimpleNamespace(name=path.name, original_size=(640, 480))  # the size of the test's cameras

    def match(self, a, b):
        res = SimpleNamespace()
        res.points0, res.points1 = (project(self.X, *self.poses[f.name]) for f in (a, b))
        res.matches = np.stack([np.arange(len(self.X))] * 2, 1)
        return res


def quaternion(R):
    w = math.sqrt(max(1 + np.trace(R), 1e-12)) / 2
    return w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)


def test_evaluation_on_exact_correspondences(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform([-2, -2, 4], [2, 2, 7], size=(200, 3))
    cameras = "1 PINHOLE 640 480 800 810 320 240\n2 SIMPLE_RADIAL 640 480 700 330 250 0.0\n"
    lines, poses = [], {}
    for k, center in enumerate([(-0.6, 0.0, 0.0), (0.0, 0.3, 0.2), (0.7, -0.1, -0.2)]):
        R, t = look_at(np.array(center))
        name = f"{'abc'[k]}.jpg"
        K = np.array([[800.0, 0, 320], [0, 810, 240], [0, 0, 1]]) if k != 1 else np.array([[700.0, 0, 330], [0, 700, 250], [0, 0, 1]])
        poses[name] = (R, t, K)
        lines.append(f"{k + 1} {' '.join(f'{v:.17g}' for v in (*quaternion(R), *t))} {1 if k != 1 else 2} {name}\n")
    scene = load_scene(write_model(tmp_path / "s", cameras, "\n".join(lines) + "\n"))
    result = evaluate_pose([scene], {"exact": ExactPipeline(X, poses)})
    assert len(result.errors["exact"]) == 3 and np.all(result.errors["exact"] < 0.1)
    assert result.summary["exact"]["auc@5"] > 98 and result.by_scene["s"]["exact"]["failed"] == 0


def cli(argv, capsys):
    return run_command(main, argv, capsys)


@pytest.mark.skipif(not LUND_DOOR.is_dir(), reason="no ../shared/data/pose/lund_door")
def test_command_on_lund_door(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = cli(["--data", LUND_DOOR, "--max-pairs-per-scene", 3, "--methods", "nn-ratio,default", "--out", out], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    for method in ("nn-ratio", "default"):
        s = metrics["overall"][method]
        assert s["pairs"] == 3 and all(math.isfinite(s[f"auc@{t}"]) for t in (5, 10, 20))
        assert metrics["by_scene"]["lund_door"][method]["pairs"] == 3
    assert metrics["overall"]["default"]["auc@20"] > 0
    errors = np.load(out / "pose_errors.npz")
    assert sorted(errors) == ["default", "nn-ratio"] and errors["default"].shape == (3,)
    report = (out / "report.md").read_text()
    assert "## By scene" in report and "## Paired differences" in report and "AUC@20" in report
    # an earlier evaluation is refused without --overwrite
    code, _, err = cli(["--data", LUND_DOOR, "--max-pairs-per-scene", 1, "--methods", "nn", "--out", out], capsys)
    assert code == 2 and "earlier evaluation" in one_line_error(err)


@pytest.mark.parametrize("case, expected", [
    ("no-images-txt", "images.txt: missing"),
    ("bad-camera", "cameras.txt:2: malformed camera line"),
    ("bad-model", "cameras.txt:1: camera model 'FISHEYE' is not supported"),
    ("bad-image", "images.txt:3: malformed image line"),
    ("unknown-camera", "images.txt:1: image 'a.jpg' names camera 9"),
    ("no-points-line", "images.txt:2: malformed POINTS2D line"),
    ("bad-pair", "pairs.txt:2: image 'z.jpg' is not in the scene"),
    ("missing-image", "c.jpg: missing"),
    ("resized", "a.jpg: the image is 64x48, its camera in"),
    ("oracle", "oracle@1: oracles read a true homography"),
    ("no-data", "not a folder"),
    ("no-scene", "no scene"),
])
def test_bad_input_is_one_line(tmp_path, capsys, case, expected):
    scene = tmp_path / "data" / "scene"
    cameras, images, methods = CAMERAS, IMAGES, "nn"
    if case == "bad-camera":
        cameras = "1 PINHOLE 640 480 500 500 320 240\n2 PINHOLE 640 x 500 500 320 240\n"
    elif case == "bad-model":
        cameras = "1 FISHEYE 640 480 500 320 240\n"
    elif case == "bad-image":
        images = "1 1 0 0 0 0 0 0 1 a.jpg\n\n2 1 0 0 0 0 0 1 b.jpg\n\n"
    elif case == "unknown-camera":
        images = "1 1 0 0 0 0 0 0 9 a.jpg\n\n"
    elif case == "no-points-line":
        images = "1 1 0 0 0 0 0 0 1 a.jpg\n2 1 0 0 0 0 0 0 1 b.jpg\n\n"
    elif case == "oracle":
        methods = "nn,oracle@1"
    write_model(scene, cameras, images)
    if case == "no-images-txt":
        (scene / "gt" / "images.txt").unlink()
    elif case == "bad-pair":
        (scene / "pairs.txt").write_text("a.jpg b.jpg\na.jpg z.jpg\n")
    elif case == "missing-image":
        (scene / "images" / "c.jpg").unlink()
    data = tmp_path / "data"
    if case == "no-data":
        data = tmp_path / "nothing-here"
    elif case == "no-scene":
        data = tmp_path / "empty"
        data.mkdir()
    code, _, err = cli(["--data", data, "--methods", methods, "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert expected in one_line_error(err)
    if case not in ("oracle", "resized"):  # the library raises the same on reading the scene
        with pytest.raises(PygmatchError, match="missing|malformed|not|no scene"):
            load_scenes(data)


def test_without_data_and_without_the_dev_scenes_the_embedded_scene_is_evaluated(tmp_path, capsys, monkeypatch):
    """A new user's first run: the four embedded lund_door photographs (6 pairs) with their true cameras."""
    import pygmatch.commands.eval_pose as command

    monkeypatch.setattr(command, "DEV_DATA", (tmp_path / "none",))
    code, _, err = cli(["--methods", "nn", "--out", tmp_path / "out"], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "pose-mini" in (tmp_path / "out" / "report.md").read_text()
    nn = metrics["overall"]["nn"]
    assert nn["pairs"] == 6 and nn["auc@20"] > 80, nn


def binary_model(text_folder, out):
    """The binary form of a COLMAP text model, written by pycolmap (which wants a points3D.txt)."""
    pycolmap = pytest.importorskip("pycolmap")
    source = out.parent / f"{out.name}-text"
    source.mkdir(parents=True)
    for name in ("cameras.txt", "images.txt"):
        (source / name).write_bytes((text_folder / name).read_bytes())
    (source / "points3D.txt").write_text("")
    out.mkdir(parents=True)
    pycolmap.Reconstruction(str(source)).write_binary(str(out))
    return out


def same_images(a: dict, b: dict):
    assert list(a) == list(b)
    for name in a:
        assert (a[name].id, a[name].camera.id, a[name].camera.model, a[name].camera.width) == \
            (b[name].id, b[name].camera.id, b[name].camera.model, b[name].camera.width)
        np.testing.assert_allclose(b[name].K, a[name].K, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b[name].R, a[name].R, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b[name].t, a[name].t, rtol=0, atol=1e-12)


def test_colmap_binary_reader_reads_what_pycolmap_writes(tmp_path):
    """The five camera models and 2D points (skipped), and the development scene when present: the
    binary model pycolmap writes reads as the text model it came from."""
    text = write_model(tmp_path / "scene", images=IMAGES.replace("10.5 20.5 -1 11 20 30", "10.5 20.5 -1 11 20 -1")) / "gt"
    binary = binary_model(text, tmp_path / "binary")
    same_images(read_colmap_text(text), read_colmap_binary(binary))
    assert read_colmap_model(binary)["b.jpg"].camera.model == "PINHOLE"
    if LUND_DOOR.is_dir():
        same_images(read_colmap_text(LUND_DOOR / "gt"), read_colmap_binary(binary_model(LUND_DOOR / "gt", tmp_path / "lund")))
    # truncated or foreign files: one line naming the file and where
    data = (binary / "images.bin").read_bytes()
    (binary / "images.bin").write_bytes(data[:100])
    with pytest.raises(PygmatchError, match=r"images.bin: truncated at byte \d+ \(reading|images.bin: byte 0: 5 images cannot fit"):
        read_colmap_binary(binary)
    (binary / "images.bin").write_bytes(data + b"\0")
    with pytest.raises(PygmatchError, match="images.bin: 1 bytes left over after the last entry"):
        read_colmap_binary(binary)
    cameras = bytearray((binary / "cameras.bin").read_bytes())
    cameras[12:16] = (7).to_bytes(4, "little")  # the first camera's model id: FOV
    (binary / "cameras.bin").write_bytes(bytes(cameras))
    with pytest.raises(PygmatchError, match="cameras.bin byte 8: camera model 'FOV' is not supported"):
        read_colmap_binary(binary)
    (binary / "cameras.bin").write_bytes(b"junk")
    with pytest.raises(PygmatchError, match="cameras.bin: truncated at byte 0"):
        read_colmap_binary(binary)


def superglue_pairs(scene, pairs) -> str:
    """SuperGlue's pair-file lines for ``pairs`` of a COLMAP scene: its K in OpenCV's pixel
    convention (COLMAP's minus half a pixel), T_0to1 from the true poses."""
    lines = []
    for a, b in pairs:
        im0, im1 = scene.images[a], scene.images[b]
        shift = np.array([[1.0, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = relative_pose(im0, im1)
        values = [*(shift @ im0.K).ravel(), *(shift @ im1.K).ravel(), *T.ravel()]
        lines.append(f"{a} {b} 0 0 " + " ".join(f"{v:.17g}" for v in values))
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not LUND_DOOR.is_dir(), reason="no ../shared/data/pose/lund_door")
def test_pair_file_binary_model_and_both_estimators_agree_with_the_text_model(tmp_path, capsys):
    """The same three lund_door pairs as a SuperGlue-style pair file and as a scene with a binary
    model: the same truth as the text model, and the same pose errors, for OpenCV and PoseLib."""
    scene = load_scene(LUND_DOOR, max_pairs=3)
    pair_file = tmp_path / "lund_pairs_with_gt.txt"
    pair_file.write_text(superglue_pairs(scene, scene.pairs))
    from_file, = load_scenes(pair_file, image_folder=LUND_DOOR / "images")
    assert from_file.name == "lund_pairs_with_gt" and from_file.pairs == scene.pairs
    for a, b in scene.pairs:
        want, got = scene.truth(a, b), from_file.truth(a, b)
        for field in ("K0", "K1", "R", "t"):
            np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=0, atol=1e-9)
    binary_scene = tmp_path / "lund_door"
    binary_model(LUND_DOOR / "gt", binary_scene / "gt")
    (binary_scene / "images").symlink_to(LUND_DOOR / "images")
    metrics = {}
    for data, extra in (("text", ["--data", LUND_DOOR]), ("file", ["--data", pair_file, "--images", LUND_DOOR / "images"]),
                        ("binary", ["--data", binary_scene])):
        out = tmp_path / f"out-{data}"
        code, _, err = cli([*extra, "--max-pairs-per-scene", 3, "--methods", "nn-ratio", "--estimator", "both", "--out", out], capsys)
        assert code == 0, err
        metrics[data] = json.loads((out / "metrics.json").read_text())
        errors = np.load(out / "pose_errors.npz")
        assert sorted(errors) == ["nn-ratio", "poselib/nn-ratio"] and errors["poselib/nn-ratio"].shape == (3,)
    overall = metrics["text"]["overall"]["nn-ratio"]
    assert metrics["text"]["estimators"] == ["opencv", "poselib"]
    for key in ("auc@5", "auc@10", "auc@20", "inliers", "poselib/auc@5", "poselib/auc@10", "poselib/auc@20", "poselib/inliers"):
        assert metrics["file"]["overall"]["nn-ratio"][key] == pytest.approx(overall[key], abs=1e-6), key
        assert metrics["binary"]["overall"]["nn-ratio"][key] == pytest.approx(overall[key], abs=1e-6), key
    assert overall["poselib/auc@20"] > 80 and overall["auc@20"] > 80
    report = (tmp_path / "out-file" / "report.md").read_text()
    assert "AUC@5 PoseLib" in report and "AUC@5 OpenCV" in report and "intrinsics from the pair file" in report


@pytest.mark.parametrize("case, expected", [
    ("columns", "pairs.txt:2: malformed pair line: expected 38 columns"),
    ("number", "pairs.txt:1: malformed pair line: 'x' is not a number"),
    ("rotation", "pairs.txt:1: T_0to1 is not a rigid motion"),
    ("camera", "pairs.txt:1: K1 is not a camera matrix"),
    ("twice", "pairs.txt:2: the pair a.jpg b.jpg is listed twice"),
    ("missing-image", "z.jpg: missing (named in"),
    ("images-with-a-folder", "an image folder goes with a pair file"),
    ("no-poselib", "estimator 'poselib' needs PoseLib: pip install poselib"),
])
def test_bad_pair_file_is_one_line(tmp_path, capsys, monkeypatch, case, expected):
    folder = write_model(tmp_path / "scene")
    K = "500 0 320 0 500 240 0 0 1"
    T = "1 0 0 1 0 1 0 0 0 0 1 0 0 0 0 1"
    lines = [f"a.jpg b.jpg 0 0 {K} {K} {T}", f"b.jpg c.jpg 0 0 {K} {K} {T}"]
    if case == "columns":
        lines[1] = lines[1][:-2]
    elif case == "number":
        lines[0] = lines[0].replace(" 320 ", " x ", 1)
    elif case == "rotation":
        lines[0] = lines[0].replace(T, "2 0 0 1 0 1 0 0 0 0 1 0 0 0 0 1")
    elif case == "camera":
        lines[0] = f"a.jpg b.jpg 0 0 {K} -500 0 320 0 500 240 0 0 1 {T}"
    elif case == "twice":
        lines[1] = lines[0]
    elif case == "missing-image":
        lines[1] = lines[1].replace("c.jpg", "z.jpg")
    pair_file = folder / "pairs.txt"
    pair_file.write_text("\n".join(lines) + "\n")
    argv = ["--data", pair_file, "--images", folder / "images", "--methods", "nn", "--out", tmp_path / "out"]
    if case == "images-with-a-folder":
        argv[1] = folder
    elif case == "no-poselib":
        monkeypatch.setitem(__import__("sys").modules, "poselib", None)  # as if not installed
        argv += ["--estimator", "both"]
    code, _, err = cli(argv, capsys)
    assert code == 2 and expected in one_line_error(err), err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_bad_contrast_threshold_is_one_line(tmp_path, capsys):
    code, _, err = cli(["--contrast-threshold", "1.5", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert one_line_error(err) == "error: argument --contrast-threshold: expected a contrast threshold in (0, 1), got '1.5'"


def test_resize_sets_the_side_keypoints_are_found_at(tmp_path, capsys):
    """``--resize``: keypoints found on images downscaled to that side (the report says so), the poses
    still measured in the original pixels; a side too small to hold keypoints is one line."""
    out = tmp_path / "out"
    code, _, err = cli(["--data", POSE_MINI, "--max-pairs-per-scene", 2, "--methods", "nn-ratio", "--resize", 512, "--out", out], capsys)
    assert code == 0, err
    assert "downscaled to at most 512 px" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["overall"]["nn-ratio"]["auc@20"] > 50
    code, _, err = cli(["--data", POSE_MINI, "--methods", "nn", "--resize", 16, "--out", tmp_path / "small"], capsys)
    assert code == 2 and "resize must be a number of pixels >= 32" in one_line_error(err)


def test_selection_picks_the_keypoints_filling_the_budget(tmp_path, capsys):
    """``--selection``: the report names it; by default the pipelines' (SIFT spread below 4096)."""
    for flags, named in ((["--max-keypoints", 512], "spread"), (["--max-keypoints", 512, "--selection", "strongest"], "strongest")):
        out = tmp_path / named
        code, _, err = cli(["--data", POSE_MINI, "--max-pairs-per-scene", 2, "--methods", "nn-ratio", *flags, "--out", out], capsys)
        assert code == 0, err
        assert f"(contrast threshold 0.02; {named})" in (out / "report.md").read_text()
    code, _, err = cli(["--selection", "best", "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "argument --selection: invalid choice: 'best'" in one_line_error(err)


def test_the_pairs_by_rotation(tmp_path, capsys):
    """``## By true rotation``: every pair in the group of its true rotation, the groups' pairs adding up."""
    from pygmatch.data.epipolar import rotation_angle
    from pygmatch.data.scenes import load_scene
    from pygmatch.evaluation.pose import rotation_group

    out = tmp_path / "out"
    code, _, err = cli(["--data", LUND_DOOR, "--max-pairs-per-scene", 6, "--methods", "nn-ratio", "--out", out], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    scene = load_scene(LUND_DOOR, 6)
    expected = {}
    for a, b in scene.pairs:
        group = rotation_group(rotation_angle(scene.truth(a, b).R))
        expected[group] = expected.get(group, 0) + 1
    assert {g: s["nn-ratio"]["pairs"] for g, s in metrics["by_rotation"].items()} == expected
    assert "## By true rotation" in (out / "report.md").read_text()
    assert [rotation_group(x) for x in (0, 9.9, 10, 29.9, 30, 179)] == ["< 10°", "< 10°", "10–30°", "10–30°", "≥ 30°", "≥ 30°"]
