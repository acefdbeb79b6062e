"""End-to-end: the ``python -m eval.coco`` command on real images, and its bad-input errors."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pygmatch.data import list_images, make_pairs
from pygmatch.metrics import error_auc

from .conftest import ROOT


def run_eval(*args):
    return subprocess.run([sys.executable, "-m", "eval.coco", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_evaluates_baselines_and_writes_the_report(tmp_path, coco_val):
    out = tmp_path / "out"
    r = run_eval("--data", coco_val, "--max-images", 4, "--methods", "nn,nn-ratio", "--out", out, "--save-pairs", tmp_path / "p.npz", "--draw", 1)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"nn", "nn-ratio"}
    keys = {"precision", "precision@1", "recall", "matches", "ms_per_pair", "pairs", "skipped"}
    keys |= {f"{p}auc@{t}" for p in ("", "dlt_") for t in (1, 3, 5, 10)}
    assert keys <= set(metrics["nn"])
    assert metrics["nn"]["pairs"] == 4 and metrics["nn"]["skipped"] == 0
    # the ratio test trades recall for precision, on real images as in the papers
    assert metrics["nn-ratio"]["precision"] > metrics["nn"]["precision"] > 50
    assert metrics["nn"]["recall"] >= metrics["nn-ratio"]["recall"]
    assert 0 < metrics["nn"]["precision@1"] <= metrics["nn"]["precision"]
    assert 0 <= metrics["nn"]["auc@1"] <= metrics["nn"]["auc@3"] <= metrics["nn"]["auc@10"] <= 100
    errors = np.load(out / "corner_errors.npz")  # per pair, for paired comparisons later
    assert errors["nn"].shape == (4,) and 100 * error_auc(errors["nn"], (3,))[0] == pytest.approx(metrics["nn"]["auc@3"])
    for f in ("report.md", "corner_error.png", "precision_recall.png"):
        assert (out / f).stat().st_size > 500
    assert len(list((out / "matches").glob("*.png"))) == 2
    assert "| nn-ratio" in r.stdout and "P@1" in r.stdout

    # the saved pair set evaluates as-is, to the same numbers
    again = run_eval("--pairs", tmp_path / "p.npz", "--methods", "nn,nn-ratio", "--out", tmp_path / "again", "--draw", 0)
    assert again.returncode == 0, again.stderr
    metrics2 = json.loads((tmp_path / "again" / "metrics.json").read_text())
    for key in ("precision", "recall", "auc@3", "matches"):
        assert metrics2["nn"][key] == pytest.approx(metrics["nn"][key])


def test_corrupt_files_are_counted_in_the_report(tmp_path, embedded_dir):
    data = tmp_path / "imgs"
    data.mkdir()
    for f in list_images(embedded_dir)[:2]:
        shutil.copy(f, data)
    (data / "zz_broken.jpg").write_bytes(b"nope")
    r = run_eval("--data", data, "--out", tmp_path / "out", "--draw", 0)
    assert r.returncode == 0, r.stderr
    assert "warning: skipping" in r.stderr and "zz_broken.jpg" in r.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["nn"]["skipped"] == 1
    assert "zz_broken.jpg" in (tmp_path / "out" / "report.md").read_text()


def test_pairs_without_keypoints_count_as_failures(tmp_path, embedded_dir):
    pairs = make_pairs(embedded_dir, max_images=2)
    pairs.image1[1] = 100  # a blank second image: no keypoints
    pairs.save(tmp_path / "p.npz")
    r = run_eval("--pairs", tmp_path / "p.npz", "--out", tmp_path / "o", "--draw", 0)
    assert r.returncode == 0, r.stderr
    assert "only" in r.stderr and "counted as a failure" in r.stderr
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["nn"]
    assert m["pairs"] == 2 and m["skipped"] == 1 and m["auc@10"] <= 50  # the blank pair is a miss


def test_all_blank_pairs_is_an_error(tmp_path):
    blank = np.full((3, 120, 160), 100, np.uint8)
    np.savez(tmp_path / "blank.npz", image0=blank, image1=blank, H_0to1=np.tile(np.eye(3), (3, 1, 1)))
    r = run_eval("--pairs", tmp_path / "blank.npz", "--out", tmp_path / "o")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: no pair could be evaluated (every pair has fewer than 2 keypoints)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/dir"], "error: /no/such/dir: no such folder"),
        (["--methods", "nn,magic"], "error: unknown method 'magic'"),
        (["--methods", "oracle@abc"], "error: bad method 'oracle@abc': expected oracle@PX"),
        (["--pairs", "/no/such.npz"], "error: /no/such.npz: no such pair file"),
        (["--features", "surf"], "invalid choice: 'surf'"),
        (["--size", "10x10"], "expected WIDTHxHEIGHT"),
        (["--difficulty", "-1"], "expected a number >= 0"),
    ],
)
def test_bad_input_gives_one_line_errors(tmp_path, args, message):
    r = run_eval(*args, "--out", tmp_path / "o")
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_empty_folder(tmp_path):
    r = run_eval("--data", tmp_path, "--out", tmp_path / "o")
    assert r.returncode == 2 and "no images" in r.stderr and "Traceback" not in r.stderr


def test_no_arguments_compares_the_shipped_model_with_the_baselines(tmp_path):
    r = run_eval("--max-images", 2, "--out", tmp_path / "o", "--draw", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert list(metrics) == ["default", "nn", "nn-ratio"]
    assert metrics["default"]["matches"] > 20  # the shipped weights load and match real images
    assert (tmp_path / "o" / "precision_recall.png").is_file() and len(list((tmp_path / "o" / "matches").glob("*_default.png"))) == 1


def test_a_model_for_other_features_is_refused(tmp_path):
    r = run_eval("--methods", "default", "--features", "orb", "--out", tmp_path / "o")
    assert r.returncode == 2 and "trained on sift keypoints, but this evaluation uses orb" in r.stderr
