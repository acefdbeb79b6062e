"""End-to-end: the ``python -m eval.coco`` command on real images, and its bad-input errors."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pygmatch.data import PairSet, list_images, make_pairs
from pygmatch.evaluation.metrics import error_auc

from .conftest import ROOT, one_line_error, run_command


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
        (["--methods", "nn,magic"], "error: unknown matcher 'magic'"),
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


def test_no_arguments_compares_the_shipped_models_with_the_baselines(tmp_path):
    r = run_eval("--max-images", 2, "--out", tmp_path / "o", "--draw", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert list(metrics) == ["default", "candidate-graph", "nn", "nn-ratio", "nn-oracle@1", "oracle@1"]
    # the shipped weights load and match real images, more precisely than nearest neighbours
    assert metrics["candidate-graph"]["matches"] > 20 and metrics["candidate-graph"]["precision"] > metrics["nn"]["precision"]
    # the default keeps more of the candidate graph's candidates (threshold 0.2, not 0.5), moved by the shipped
    # refiner: more of them within 1 px of the truth
    assert metrics["default"]["matches"] >= metrics["candidate-graph"]["matches"]
    assert metrics["default"]["precision@1"] > metrics["candidate-graph"]["precision@1"]
    assert (tmp_path / "o" / "precision_recall.png").is_file() and len(list((tmp_path / "o" / "matches").glob("*_candidate-graph.png"))) == 1


def test_a_model_for_other_features_is_refused(tmp_path):
    r = run_eval("--methods", "candidate-graph", "--features", "orb", "--out", tmp_path / "o")
    assert r.returncode == 2 and "the matcher was trained on sift keypoints, but the extractor finds orb" in r.stderr


def cli(argv, capsys):
    """``python -m eval.coco`` in-process, as the console runs it: (exit status, stdout, stderr)."""
    from eval.coco import main

    return run_command(main, argv, capsys)


def test_bad_outputs_and_values_stop_before_any_work(tmp_path, embedded_dir, readonly_dir, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "folder").mkdir()
    pairs = make_pairs(embedded_dir, max_images=3)
    pairs.H_0to1[1] = 0
    pairs.save(tmp_path / "zero.npz")
    pairs.H_0to1[1] = [[1, 0, 0], [2, 0, 0], [0, 0, 1]]
    pairs.save(tmp_path / "singular.npz")
    out = tmp_path / "o"
    cases = [
        (["--out", tmp_path / "a_file"], f"error: --out {tmp_path / 'a_file'}: exists and is not a folder"),
        (["--out", readonly_dir], f"error: --out {readonly_dir}: cannot write into this folder ("),
        (["--out", readonly_dir / "eval"], f"error: --out {readonly_dir / 'eval'}: cannot create the folder ("),
        (["--save-pairs", tmp_path / "folder"], f"error: --save-pairs {tmp_path / 'folder'}: is a folder; give a file name such as "
                                                f"{tmp_path / 'folder' / 'pairs.npz'}"),
        (["--save-pairs", readonly_dir / "p.npz"], f"error: --save-pairs {readonly_dir / 'p.npz'}: cannot write into the folder {readonly_dir} ("),
        (["--save-pairs", tmp_path / "zero.npz"], f"error: --save-pairs {tmp_path / 'zero.npz'}: exists; choose another file name, "
                                                  "or pass --overwrite to replace it"),
        (["--pairs", tmp_path / "zero.npz", "--save-pairs", tmp_path / "zero.npz", "--overwrite"],
         f"error: --save-pairs {tmp_path / 'zero.npz'}: is one of the inputs ({tmp_path / 'zero.npz'}); choose another file name"),
        (["--match-threshold", "2"], "argument --match-threshold: expected a probability threshold in [0, 1), got '2'"),
        (["--match-threshold", "-0.5"], "argument --match-threshold: expected a probability threshold in [0, 1), got '-0.5'"),
        (["--draw", "-1"], "argument --draw: expected an integer >= 0, got '-1'"),
        (["--threads", "0"], "argument --threads: expected a positive int, got '0'"),
        (["--methods", "nn,runs/missing"], "error: runs/missing: no such model file, checkpoint or run folder"),
        (["--methods", "missing.pt"], "error: missing.pt: no such model file, checkpoint or run folder"),
        (["--compare", tmp_path / "run"], f"error: {tmp_path / 'run'}: no such model file, checkpoint or run folder"),
        (["--methods", "graph"], "error: unknown matcher 'graph'"),  # the attention matcher is gone
        (["--methods", "verifier"], "error: unknown matcher 'verifier'"),
        (["--methods", "magic"], "error: unknown matcher 'magic'"),
        (["--pairs", tmp_path / "zero.npz"], f"error: {tmp_path / 'zero.npz'}: H_0to1[1] (pair '{pairs.names[1]}') is all zeros: "
                                             "a homography must be invertible"),
        (["--pairs", tmp_path / "singular.npz"], f"error: {tmp_path / 'singular.npz'}: H_0to1[1] (pair '{pairs.names[1]}') is singular"),
    ]
    for args, message in cases:
        extra = [] if "--methods" in args else ["--methods", "nn"]
        code, stdout, err = cli([*args, *extra, "--max-images", 1] + ([] if "--out" in args else ["--out", out]), capsys)
        assert code == 2, args
        assert message in one_line_error(err), (args, err)
        assert stdout == ""  # stopped before evaluating or saving anything
    assert not any(p.name.endswith(".tmp.npz") for p in tmp_path.rglob("*"))  # no stray temporary pair file
    assert list((tmp_path / "folder").iterdir()) == []
    assert not (out / "metrics.json").exists()


def test_outputs_go_into_new_folders_and_threads_are_used(tmp_path, embedded_dir, capsys, monkeypatch):
    import torch

    from pygmatch.nn.candidate_graph import CandidateGraphNet

    seen = []
    forward = CandidateGraphNet.forward
    monkeypatch.setattr(CandidateGraphNet, "forward", lambda self, *a, **k: seen.append(torch.get_num_threads()) or forward(self, *a, **k))
    out, saved = tmp_path / "new" / "eval", tmp_path / "sets" / "p.npz"
    # --match-threshold goes to the graph network only: nn beside it takes no matcher options
    code, stdout, err = cli(["--data", embedded_dir, "--max-images", 1, "--methods", "candidate-graph,nn", "--match-threshold", 0.3,
                             "--threads", 1, "--draw", 1, "--out", out, "--save-pairs", saved], capsys)
    assert code == 0, err
    assert seen and set(seen) == {1}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["candidate-graph"]["pairs"] == metrics["nn"]["pairs"] == 1
    drawing = cv2.imread(str(next((out / "matches").glob("*_candidate-graph.png"))))
    assert drawing is not None and drawing.shape[1] > 1000
    assert len(PairSet.load(saved)) == 1 and sorted(p.name for p in saved.parent.iterdir()) == ["p.npz"]


def test_an_earlier_evaluation_is_kept_unless_overwrite_and_then_replaced_whole(tmp_path, embedded_dir, capsys):
    """--out an existing evaluation used to replace it silently, leaving the match drawings of
    methods not in the new run beside the new report."""
    out = tmp_path / "o"
    base = ["--data", embedded_dir, "--max-images", 1, "--draw", 1, "--out", out]
    code, _, err = cli(base + ["--methods", "nn,nn-ratio"], capsys)
    assert code == 0, err
    before = (out / "report.md").read_text()
    code, _, err = cli(base + ["--methods", "nn"], capsys)
    assert code == 2
    assert one_line_error(err) == f"error: --out {out}: holds an earlier evaluation (report.md); give another --out or --overwrite to replace it"
    assert (out / "report.md").read_text() == before  # nothing lost
    code, _, err = cli(base + ["--methods", "nn,nope", "--overwrite"], capsys)  # a failed start loses nothing either
    assert code == 2 and (out / "report.md").read_text() == before
    (out / "notes.txt").write_text("mine")
    code, _, err = cli(base + ["--methods", "nn", "--overwrite"], capsys)
    assert code == 0, err
    assert list(json.loads((out / "metrics.json").read_text())) == ["nn"]
    assert [p.name.rsplit("_", 1)[-1] for p in (out / "matches").glob("*.png")] == ["nn.png"]  # no stale nn-ratio drawing
    assert (out / "notes.txt").read_text() == "mine"  # other files are left alone


def test_a_pair_set_that_cannot_fit_in_memory_is_refused_up_front(tmp_path, embedded_dir, capsys):
    code, _, err = cli(["--data", embedded_dir, "--pairs-per-image", 1000000000, "--methods", "nn", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "pairs of 640x480 would need about" in one_line_error(err) and "GiB is available" in err


def test_poselib_estimator_is_a_flag_and_opencv_stays_the_default(tmp_path, embedded_dir, capsys):
    pytest.importorskip("poselib")
    base = ["--data", embedded_dir, "--max-images", 2, "--methods", "nn-ratio", "--draw", 0]
    code, _, err = cli(base + ["--out", tmp_path / "cv"], capsys)
    assert code == 0, err
    code, _, err = cli(base + ["--out", tmp_path / "pl", "--estimator", "poselib"], capsys)
    assert code == 0, err
    cv, pl = (json.loads((tmp_path / d / "metrics.json").read_text())["nn-ratio"] for d in ("cv", "pl"))
    assert cv["matches"] == pl["matches"] and cv["precision"] == pl["precision"]  # the same matches, another RANSAC
    assert pl["auc@10"] > 80 and cv["auc@10"] > 80


def test_the_default_out_goes_to_a_new_folder_after_an_earlier_evaluation(tmp_path, embedded_dir, capsys, monkeypatch):
    """Issue #32, item 9: after ``make demo`` (``eval.coco --overwrite`` into eval-out) the README's
    plain ``python -m eval.coco`` failed on the demo's evaluation. Without --out an evaluation goes
    to eval-out, else to the first free eval-out-2, eval-out-3, ... and says so; an explicit --out
    holding an evaluation stays refused, and --overwrite replaces eval-out."""
    monkeypatch.chdir(tmp_path)
    base = ["--data", embedded_dir, "--max-images", 1, "--methods", "nn", "--draw", 0]
    code, stdout, err = cli(base + ["--overwrite"], capsys)  # what make demo runs
    assert code == 0, err
    demo = (tmp_path / "eval-out" / "report.md").read_text()
    for n in (2, 3):
        code, stdout, err = cli(base, capsys)
        assert code == 0, err
        assert stdout.startswith(f"eval-out holds an earlier evaluation; this one goes to eval-out-{n} (")
        assert stdout.strip().endswith(f"report in eval-out-{n}/report.md") and (tmp_path / f"eval-out-{n}" / "metrics.json").is_file()
    assert (tmp_path / "eval-out" / "report.md").read_text() == demo  # nothing earlier lost
    code, _, err = cli(base + ["--out", "eval-out"], capsys)  # given explicitly: refused as before
    assert code == 2 and "error: --out eval-out: holds an earlier evaluation (report.md)" in one_line_error(err)
    code, stdout, err = cli(base + ["--methods", "nn-ratio", "--overwrite"], capsys)
    assert code == 0 and "report in eval-out/report.md" in stdout and "holds an earlier" not in stdout, err
    assert list(json.loads((tmp_path / "eval-out" / "metrics.json").read_text())) == ["nn-ratio"]
    assert not (tmp_path / "eval-out-4").exists()
