"""The pose benchmarks run end to end on the embedded scene (four lund_door photographs with their
true cameras): ``benchmarks.budget_variants`` (a variant's keypoints through ``eval.pose``) and
``benchmarks.pose_timing``."""
import json

import numpy as np

import pygmatch.pipeline
from benchmarks import budget_variants, pose_timing
from pygmatch.data.features import Keypoints
from pygmatch.data.images import read_gray

from .conftest import ROOT

POSE_MINI = ROOT / "pygmatch" / "datasets" / "pose-mini"


def test_opencv_variants_fill_the_budget_with_unit_descriptors():
    image = read_gray(sorted((POSE_MINI / "lund_door" / "images").iterdir())[0], None)
    for variant in ("octave0", "tilt-stable", "dsp"):
        kp = budget_variants.opencv_variant(variant)(image, "sift", 200, 0.02, "spread")
        assert isinstance(kp, Keypoints) and len(kp) == 200
        assert np.allclose(np.linalg.norm(kp.descriptors, axis=1), 1, atol=1e-4)


def test_a_variant_runs_eval_pose(tmp_path):
    extract = pygmatch.pipeline.extract
    out = tmp_path / "out"
    code = budget_variants.main(["tilt-stable", "--data", str(POSE_MINI), "--max-keypoints", "512", "--methods", "nn-ratio",
                                 "--max-pairs-per-scene", "2", "--out", str(out)])
    assert code == 0
    overall = json.loads((out / "metrics.json").read_text())["overall"]["nn-ratio"]
    assert overall["pairs"] == 2 and overall["failed"] == 0 and overall["auc@20"] > 50
    assert pygmatch.pipeline.extract is extract  # the shipped extraction is back for what runs next


def test_timing_table(tmp_path):
    out = tmp_path / "timing.md"
    pose_timing.main(["--data", str(POSE_MINI), "--methods", "nn-ratio,nn-ratio#256", "--every", "3", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| nn-ratio")]
    assert len(rows) == 2 and rows[0].endswith("| 1.00 |")
