"""Real-scene training pairs (``pygmatch.training.scenes``): a COLMAP text model with 3-D points
labels the candidates. Checked on a scene whose truth is known exactly: a photograph on a plane
seen by two cameras, the second image rendered through the plane's homography, the model written
as COLMAP writes it; and ``train.run --scenes`` trains on it."""
from __future__ import annotations

import math
import subprocess

import cv2
import numpy as np
import pytest

from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.nn.candidate_graph import CandidateGraphConfig
from pygmatch.training.scenes import SceneGraphs, candidate_errors, covisible_pairs, load_views

from .conftest import ROOT
from .test_training_run import train_cmd

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])  # COLMAP's convention: the first pixel's centre at 0.5
DEPTH = 5.0  # the plane z = 5 in camera 0 (= world) coordinates


def rotation_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def quaternion(R: np.ndarray) -> list[float]:
    w = math.sqrt(max(0.0, 1 + np.trace(R))) / 2
    return [w, (R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w)]


@pytest.fixture
def plane_scene(tmp_path, image):
    """``(scene folder, H)``: image 0 the photograph, image 1 camera 1's view of it on the plane, H
    the homography 0 -> 1 in pygmatch's pixels; 2,000 3-D points on the plane observed in both."""
    R, t = rotation_y(12.0), np.array([-0.8, 0.05, 0.3])
    n = np.array([0, 0, 1.0])
    H_colmap = K @ (R + np.outer(t, n) / DEPTH) @ np.linalg.inv(K)
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    H = np.linalg.inv(shift) @ H_colmap @ shift  # pygmatch's pixel centres are at integers
    H /= H[2, 2]
    scene = tmp_path / "plane"
    (scene / "images").mkdir(parents=True)
    (scene / "model").mkdir()
    cv2.imwrite(str(scene / "images" / "a.png"), image)
    cv2.imwrite(str(scene / "images" / "b.png"), cv2.warpPerspective(image, H, (640, 480)))
    rng = np.random.default_rng(0)
    seen0 = rng.uniform([5, 5], [635, 475], (2000, 2))  # COLMAP pixels
    X = np.c_[(seen0 - K[:2, 2]) / K[0, 0], np.ones(len(seen0))] * DEPTH
    seen1 = (X @ R.T + t) @ K.T
    seen1 = seen1[:, :2] / seen1[:, 2:]
    (scene / "model" / "cameras.txt").write_text("1 PINHOLE 640 480 500 500 320 240\n")
    obs0 = " ".join(f"{x:.4f} {y:.4f} {k}" for k, (x, y) in enumerate(seen0))
    obs1 = " ".join(f"{x:.4f} {y:.4f} {k}" for k, (x, y) in enumerate(seen1) if 0 <= x < 640 and 0 <= y < 480)
    q = quaternion(R)
    (scene / "model" / "images.txt").write_text(f"# a comment\n1 1 0 0 0 0 0 0 1 a.png\n{obs0}\n"
                                                f"2 {' '.join(map(str, q))} {' '.join(map(str, t))} 1 b.png\n{obs1}\n")
    (scene / "model" / "points3D.txt").write_text("".join(f"{k} {x} {y} {z} 128 128 128 0.5\n" for k, (x, y, z) in enumerate(X)))
    return scene, H


def test_labels_agree_with_the_exact_truth(plane_scene):
    scene, H = plane_scene
    cfg = CandidateGraphConfig()
    views = load_views(scene, 640, 1024)
    assert [v.name for v in views] == ["a.png", "b.png"] and len(views[1].observed_xy) > 300
    assert covisible_pairs(views, 10, 0) == [(0, 1)]
    graphs = SceneGraphs([scene], cfg, progress=False)
    assert len(graphs) == 1
    from pygmatch.matching.candidate_graph import descriptor_candidates

    cand, _ = descriptor_candidates(views[0].keypoints.descriptors, views[1].keypoints.descriptors, cfg.candidates)
    label = candidate_errors(views[0], views[1], cand, cfg.ignore_px)
    np.testing.assert_array_equal(np.isnan(label), np.isnan(graphs[0].error.numpy()))
    truth = np.linalg.norm(warp_points(views[0].keypoints.xy[cand[:, 0]], H) - views[1].keypoints.xy[cand[:, 1]], axis=1)
    positive, negative = label < 1, label > 3
    assert positive.sum() >= 0.7 * (truth < 0.5).sum() > 50  # most exact matches are labelled as matches
    # a labelled match is right: on the epipolar line within 1 px, and where the depth puts it within
    # TRANSFER_PX (the interpolated depth cannot place it to a pixel along the line)
    assert (truth[positive] < 3).all() and np.mean(truth[positive] < 1.5) > 0.98
    assert (truth[negative] > 3).all()  # no labelled non-match is right
    assert np.isnan(label).mean() < 0.3


def test_a_scene_without_3d_points_or_covisible_pairs_is_one_line(tmp_path, plane_scene):
    scene, _ = plane_scene
    with pytest.raises(PygmatchError, match="nowhere: no such scene folder"):
        SceneGraphs([tmp_path / "nowhere"], CandidateGraphConfig(), progress=False)
    (scene / "model" / "points3D.txt").unlink()
    with pytest.raises(PygmatchError, match="no COLMAP text model with points3D.txt"):
        SceneGraphs([scene], CandidateGraphConfig(), progress=False)
    (scene / "model" / "points3D.txt").write_text("")
    with pytest.raises(PygmatchError, match="no two images share 50 3-D points"):
        SceneGraphs([scene], CandidateGraphConfig(), progress=False)
    # a photograph that is not the one reconstructed (another size than its camera's) would be mislabelled
    cv2.imwrite(str(scene / "images" / "b.png"), np.zeros((300, 400), np.uint8))
    with pytest.raises(PygmatchError, match=r"b.png: the image is 400x300, its camera .* 640x480"):
        load_views(scene, 640, 256)


def test_train_run_trains_on_scenes_beside_homography_pairs(tmp_path, plane_scene):
    scene, _ = plane_scene
    out = tmp_path / "run"
    r = subprocess.run(train_cmd("--scenes", scene, "--max-steps", 3, "--val-every", 3, "--out", out), cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "SceneGraphs(1 graphs of 1 scene(s))" in r.stdout
    assert (out / "last.ckpt").is_file() and "val/auc@3" in (out / "csv/version_0/metrics.csv").read_text()
