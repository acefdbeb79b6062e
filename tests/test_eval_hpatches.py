"""End-to-end: ``python -m eval.hpatches`` on real photograph sequences (the embedded Leuven
sequence, in both layouts), the homography scaling of ``--max-side``, and every bad input."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from eval.hpatches import main
from pygmatch.matching.nearest import match_nn_ratio
from pygmatch.data.sequences import EMBEDDED_SEQUENCES, load_sequences, read_homography, sequence_kind
from pygmatch.errors import PygmatchError
from pygmatch.evaluation.evaluate import evaluate, load_pipelines
from pygmatch.data.features import extract
from pygmatch.data.geometry import image_corners, warp_points

from .conftest import ROOT, run_command

LEUVEN = EMBEDDED_SEQUENCES / "leuven"  # Oxford layout, 320x213 PNG
SUMMARY_KEYS = {"precision", "precision@1", "recall", "matches", "ms_per_pair", "pairs", "skipped"} | \
    {f"{p}auc@{t}" for p in ("", "dlt_") for t in (1, 3, 5, 10)}


def oxford(dst):
    shutil.copytree(LEUVEN, dst)
    return dst


def hpatches(dst):
    """The same photographs and homographies in the HPatches layout."""
    dst.mkdir(parents=True)
    for n in range(1, 7):
        shutil.copy(LEUVEN / f"img{n}.png", dst / f"{n}.png")
    for n in range(2, 7):
        shutil.copy(LEUVEN / f"H1to{n}p", dst / f"H_1_{n}")
    return dst


def enlarged(dst, factor=1.5):
    """HPatches layout, images 2..6 enlarged by ``factor`` and their homographies with them, so
    the two images of a pair differ in size and H is far from the identity."""
    seq = hpatches(dst)
    S = np.array([[factor, 0, (factor - 1) / 2], [0, factor, (factor - 1) / 2], [0, 0, 1]])  # u = f (x + 0.5) - 0.5
    for n in range(2, 7):
        im = cv2.imread(str(seq / f"{n}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(seq / f"{n}.png"), cv2.resize(im, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR))
        np.savetxt(seq / f"H_1_{n}", S @ read_homography(seq / f"H_1_{n}"))
    return seq


def cli(argv, capsys):
    """Run the command in-process as the console does: (exit status, stdout, stderr)."""
    return run_command(main, argv, capsys)


def test_no_arguments_runs_on_the_embedded_sequence(tmp_path):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "eval.hpatches", "--out", str(out), "--draw", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["default", "candidate-graph", "nn", "nn-ratio", "nn-oracle@1", "oracle@1"]
    for m in metrics.values():
        assert set(m) == SUMMARY_KEYS  # the same keys as eval.coco
        assert m["pairs"] == 5 and m["skipped"] == 0
    # Leuven is an exposure change: the descriptors cope, as in the papers
    assert metrics["nn-ratio"]["precision"] > 90 and metrics["nn-ratio"]["auc@5"] > 80
    assert metrics["nn"]["precision@1"] <= metrics["nn"]["precision"]
    assert metrics["candidate-graph"]["matches"] > 50 and metrics["default"]["matches"] > 50
    assert metrics["nn-oracle@1"]["precision@1"] == 100
    groups = json.loads((out / "by_sequence.json").read_text())
    assert groups["sequence_kind"] == {"leuven": "other"} and groups["sequence"]["leuven"]["nn"]["pairs"] == 5
    assert groups["sequence"]["leuven"]["nn"]["auc@3"] == pytest.approx(metrics["nn"]["auc@3"])
    report = (out / "report.md").read_text()
    assert "## By sequence" in report and "| leuven" in report and "## By kind" in report
    assert np.load(out / "corner_errors.npz")["nn"].shape == (5,)
    assert (out / "corner_error.png").stat().st_size > 500
    drawn = ("candidate-graph", "default", "nn-oracle@1", "nn-ratio", "nn", "oracle@1")
    assert sorted(p.name for p in (out / "matches").glob("*.png")) == [f"leuven_1-6_{m}.png" for m in drawn]
    assert "by sequence:" in r.stdout and "5 pairs in 1 sequences, 0 counted as failures" in r.stdout


def test_both_layouts_read_the_same_pairs(tmp_path, capsys):
    data = tmp_path / "data"
    hpatches(data / "i_leuven")
    oxford(data / "leuven")
    code, stdout, _ = cli(["--data", data, "--methods", "nn-ratio,oracle@3", "--out", tmp_path / "o", "--draw", 0], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["nn-ratio"]["pairs"] == 10
    groups = json.loads((tmp_path / "o" / "by_sequence.json").read_text())
    assert groups["sequence_kind"] == {"i_leuven": "illumination", "leuven": "other"}
    assert list(groups["kind"]) == ["illumination", "other"]
    for key in ("precision", "recall", "auc@1", "auc@5", "matches"):  # same photographs, same homographies
        assert groups["sequence"]["i_leuven"]["nn-ratio"][key] == groups["sequence"]["leuven"]["nn-ratio"][key]
    assert metrics["oracle@3"]["precision"] == 100 and metrics["oracle@3"]["recall"] == 100
    assert "| i_leuven | illumination | nn-ratio |" in stdout
    # one sequence folder given directly
    code, stdout, _ = cli(["--data", data / "i_leuven", "--methods", "nn", "--out", tmp_path / "o1", "--draw", 0], capsys)
    assert code == 0 and json.loads((tmp_path / "o1" / "metrics.json").read_text())["nn"]["pairs"] == 5


def test_max_side_scales_the_homography(tmp_path):
    seq = enlarged(tmp_path / "v_big")  # image 1 is 320x213, images 2..6 480x320
    full, small = load_sequences(seq, max_side=0), load_sequences(seq, max_side=200)
    for k in range(len(full)):
        im0, im1, H = full.load_pair(k)
        sm0, sm1, Hs = small.load_pair(k)
        assert max(sm0.shape) == max(sm1.shape) == 200 and max(im0.shape) == 320 and max(im1.shape) == 480
        # image 0's corners through the true H, then into the downscaled image N (pixel centres:
        # u = s (x + 0.5) - 0.5) land where the downscaled corners go through the adjusted H
        s0 = np.array([sm0.shape[1] / im0.shape[1], sm0.shape[0] / im0.shape[0]])
        s1 = np.array([sm1.shape[1] / im1.shape[1], sm1.shape[0] / im1.shape[0]])
        corners = image_corners((im0.shape[1], im0.shape[0]))
        expected = s1 * (warp_points(corners, H) + 0.5) - 0.5
        np.testing.assert_allclose(warp_points(s0 * (corners + 0.5) - 0.5, Hs), expected, atol=1e-9)  # corner error 0
        # and real SIFT matches on the downscaled photographs agree with it to a pixel
        kp0, kp1 = extract(sm0), extract(sm1)
        m, _ = match_nn_ratio(kp0, kp1)
        err = np.linalg.norm(warp_points(kp0.xy[m[:, 0]], Hs) - kp1.xy[m[:, 1]], axis=1)
        unscaled = np.linalg.norm(warp_points(kp0.xy[m[:, 0]], H) - kp1.xy[m[:, 1]], axis=1)
        assert len(m) > 30 and np.median(err) < 1.0 and np.median(unscaled) > 20


def test_pairs_of_two_sizes(tmp_path):
    """Image N 1.5x larger than image 1 (its homography scaled with it): one core for any sizes."""
    pairs = load_sequences(enlarged(tmp_path / "v_big"))
    im0, im1, _ = pairs.load_pair(0)
    assert im0.shape == (213, 320) and im1.shape == (320, 480)
    r = evaluate(pairs, load_pipelines(["nn-ratio", "oracle@3"]), progress=False)
    assert r.summary["oracle@3"]["precision"] == 100 and r.summary["oracle@3"]["recall"] == 100
    assert r.summary["nn-ratio"]["precision"] > 85 and r.summary["nn-ratio"]["auc@10"] > 70
    assert np.all(np.isfinite(r.errors["nn-ratio"]))


def test_bad_pairs_are_named_and_counted_as_failures(tmp_path):
    data = tmp_path / "data"
    (oxford(data / "a_missing") / "img3.png").unlink()
    (oxford(data / "b_unreadable") / "img4.png").write_bytes(b"not an image")
    oxford(data / "c_bad_h")
    (data / "c_bad_h" / "H1to5p").write_text("1 2 3\n4 5 6\n")
    (data / "c_bad_h" / "H1to6p").write_text("one two three\n4 5 6\n7 8 9\n")
    oxford(data / "d_singular")
    (data / "d_singular" / "H1to2p").write_text("1 2 3\n2 4 6\n0 0 1\n")
    (oxford(data / "e_no_reference") / "img1.png").unlink()
    (oxford(data / "f_missing_h") / "H1to2p").unlink()
    oxford(data / "g_good")
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "eval.hpatches", "--data", str(data), "--methods", "nn-ratio", "--out", str(out), "--draw", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    for line in (
        f"warning: skipping pair a_missing_1-3: {data}/a_missing/img3.png: no such image (counted as a failure)",
        f"warning: skipping pair b_unreadable_1-4: {data}/b_unreadable/img4.png: not a readable image (counted as a failure)",
        f"warning: skipping pair c_bad_h_1-5: {data}/c_bad_h/H1to5p: not a homography (expected 3 lines of 3 numbers, got 2x3)",
        f"warning: skipping pair c_bad_h_1-6: {data}/c_bad_h/H1to6p: not a homography (expected 3 lines of 3 numbers)",
        f"warning: skipping pair d_singular_1-2: {data}/d_singular/H1to2p: homography is singular",
        f"warning: skipping pair e_no_reference_1-4: {data}/e_no_reference/img1.png: no such image (the reference of every pair",
        f"warning: skipping pair f_missing_h_1-2: {data}/f_missing_h/H1to2p: no such homography file",
    ):
        assert line in r.stderr
    failures = 1 + 1 + 2 + 1 + 5 + 1
    metrics = json.loads((out / "metrics.json").read_text())["nn-ratio"]
    assert metrics["pairs"] == 35 and metrics["skipped"] == failures  # in the averages, as infinite errors
    assert np.isinf(np.load(out / "corner_errors.npz")["nn-ratio"]).sum() >= failures
    groups = json.loads((out / "by_sequence.json").read_text())["sequence"]
    assert [groups[s]["nn-ratio"]["failed"] for s in sorted(groups)] == [1, 1, 2, 1, 5, 1, 0]
    assert groups["e_no_reference"]["nn-ratio"]["auc@10"] == 0
    assert groups["g_good"]["nn-ratio"]["auc@5"] > 80
    assert metrics["auc@5"] < groups["g_good"]["nn-ratio"]["auc@5"] * 25 / 35 + 1e-6
    assert f"35 pairs in 7 sequences, {failures} counted as failures" in r.stdout
    assert f"{data}/e_no_reference/img1.png" in (out / "report.md").read_text()


def test_bad_folders_stop_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain" / "photos").mkdir(parents=True)
    shutil.copy(LEUVEN / "img1.png", tmp_path / "plain" / "photos" / "holiday.png")
    mixed = oxford(tmp_path / "mixed" / "seq")
    shutil.copy(LEUVEN / "img1.png", mixed / "1.png")
    dup = oxford(tmp_path / "dup" / "seq")
    shutil.copy(LEUVEN / "img2.png", dup / "img2.jpg")
    lonely = tmp_path / "lonely" / "seq"
    lonely.mkdir(parents=True)
    shutil.copy(LEUVEN / "img1.png", lonely)
    unreadable = oxford(tmp_path / "unreadable" / "seq")
    for n in range(1, 7):
        (unreadable / f"img{n}.png").write_bytes(b"\x00" * 10)
    cases = [
        (["--data", tmp_path / "nowhere"], f"error: {tmp_path}/nowhere: no such folder"),
        (["--data", LEUVEN / "H1to2p"], f"error: {LEUVEN}/H1to2p: not a folder"),
        (["--data", tmp_path / "empty"], f"error: {tmp_path}/empty: no sequences: expected sub-folders"),
        (["--data", tmp_path / "plain"], f"error: {tmp_path}/plain: no sequences"),
        (["--data", tmp_path / "mixed"], f"error: {mixed}: mixed layouts in one folder: 1.png (HPatches) and H1to2p (Oxford)"),
        (["--data", tmp_path / "dup"], f"error: {dup}: 2 files for image 2 (img2.jpg, img2.png); keep one"),
        (["--data", tmp_path / "lonely"], f"error: {tmp_path}/lonely: no pair in any sequence ({lonely}: only img1.png"),
        (["--data", tmp_path / "unreadable"], "error: no pair could be evaluated (no pair could be read)"),
        (["--max-side", "10"], "expected a number of pixels >= 32, or 0"),
        (["--methods", "nn,oracle@x"], "error: bad method 'oracle@x': expected oracle@PX"),
        (["--methods", "magic"], "error: unknown matcher 'magic'"),
    ]
    for args, message in cases:
        extra = [] if "--methods" in args else ["--methods", "nn"]
        code, _, err = cli([*args, *extra, "--out", tmp_path / "o"], capsys)
        assert code == 2, args
        last = err.strip().splitlines()[-1]  # after the progress bar / argparse's usage line, if any
        assert message in last, (args, err)
        assert "Traceback" not in err


def test_homography_files(tmp_path):
    f = tmp_path / "H"
    f.write_text("2 0 4\n0, 2, 6\n0 0 2\n")
    np.testing.assert_allclose(read_homography(f), [[1, 0, 2], [0, 1, 3], [0, 0, 1]])  # normalised
    for text, message in [("1 0 0\n0 1 0\n", "got 2x3"), ("1 0 0 0\n0 1 0 0\n0 0 1 0\n", "got 3x4"), ("1 0\n0 1 0\n0 0 1\n", "ragged"),
                          ("1 0 0\n0 nan 0\n0 0 1\n", "non-finite"), ("0 0 0\n0 0 0\n0 0 0\n", "singular"), ("", "empty"),
                          ("1 0 0\n0 1 0\n0 0 x\n", "expected 3 lines of 3 numbers")]:
        f.write_text(text)
        with pytest.raises(PygmatchError, match=message) as e:
            read_homography(f)
        assert str(f) in str(e.value)
    f.write_bytes(bytes(range(256)))
    with pytest.raises(PygmatchError, match="not a homography"):
        read_homography(f)
    assert [sequence_kind(n) for n in ("i_ajuntament", "v_graffiti", "leuven")] == ["illumination", "viewpoint", "other"]


def test_bad_outputs_stop_before_any_work(tmp_path, readonly_dir, capsys):
    from .conftest import one_line_error

    (tmp_path / "a_file").write_text("x")
    cases = [
        (["--out", tmp_path / "a_file"], f"error: --out {tmp_path / 'a_file'}: exists and is not a folder"),
        (["--out", readonly_dir], f"error: --out {readonly_dir}: cannot write into this folder ("),
        (["--out", readonly_dir / "hp"], f"error: --out {readonly_dir / 'hp'}: cannot create the folder ("),
        (["--draw", "-1", "--out", tmp_path / "o"], "argument --draw: expected an integer >= 0, got '-1'"),
        (["--match-threshold", "2", "--out", tmp_path / "o"], "argument --match-threshold: expected a probability threshold in [0, 1), got '2'"),
        (["--threads", "-2", "--out", tmp_path / "o"], "argument --threads: expected a positive int, got '-2'"),
        (["--methods", "runs/gone", "--out", tmp_path / "o"], "error: runs/gone: no such model file, checkpoint or run folder"),
        (["--methods", "graph", "--out", tmp_path / "o"], "error: unknown matcher 'graph'"),
        (["--adaptive", "--out", tmp_path / "o"], "unrecognized arguments: --adaptive"),
    ]
    for args, message in cases:
        code, stdout, err = cli([*args] + ([] if "--methods" in args else ["--methods", "nn"]), capsys)
        assert code == 2 and stdout == "", args
        assert message in one_line_error(err), (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "readonly"]  # nothing written, not even an empty folder


def test_a_folder_of_plain_numbered_images_is_one_line_not_a_sequence(tmp_path, embedded_dir, capsys):
    """COCO's 000000005802.jpg looks like HPatches' numbered images: it used to be read as a sequence
    whose every pair was a warning, before the error."""
    for f in sorted(embedded_dir.glob("*.jpg"))[:3]:
        shutil.copy(f, tmp_path / f.name)
    code, _, err = cli(["--data", tmp_path, "--out", tmp_path / "o", "--methods", "nn"], capsys)
    assert code == 2 and "warning" not in err
    assert err.strip() == (f"error: {tmp_path}: no sequences: expected sub-folders (or this folder) holding 1.ppm … 6.ppm + H_1_2 … "
                           f"H_1_6 (HPatches) or img1.ppm … img6.ppm + H1to2p … H1to6p (Oxford) (a folder of plain images: "
                           f"evaluate it with eval.coco)")


def test_the_default_out_goes_to_a_new_folder_after_an_earlier_evaluation(tmp_path, capsys, monkeypatch):
    """Issue #32, item 9, as eval.coco: the plain command works again after an earlier one; an
    explicit --out holding an evaluation stays refused."""
    from .conftest import one_line_error

    monkeypatch.chdir(tmp_path)
    base = ["--methods", "nn", "--max-side", 160, "--draw", 0]
    code, stdout, err = cli(base, capsys)
    assert code == 0 and "holds an earlier" not in stdout, err
    first = (tmp_path / "eval-out" / "hpatches" / "report.md").read_text()
    code, stdout, err = cli(base, capsys)
    assert code == 0, err
    assert stdout.startswith("eval-out/hpatches holds an earlier evaluation; this one goes to eval-out/hpatches-2 (")
    assert stdout.strip().endswith("report in eval-out/hpatches-2/report.md")
    assert (tmp_path / "eval-out" / "hpatches-2" / "by_sequence.json").is_file()
    assert (tmp_path / "eval-out" / "hpatches" / "report.md").read_text() == first
    code, _, err = cli(base + ["--out", "eval-out/hpatches"], capsys)
    assert code == 2 and "error: --out eval-out/hpatches: holds an earlier evaluation" in one_line_error(err)


def test_degraded_sequences_keep_the_pairs_and_degrade_along_the_sequence(tmp_path):
    """``benchmarks.degraded_sequences``: the same layout, homographies and reference image; the
    other images blurred more the further along, darkened by the factor's powers, JPEG-compressed."""
    from benchmarks.degraded_sequences import main as degrade_main

    source = tmp_path / "src"
    shutil.copytree(LEUVEN, source / "leuven")
    assert degrade_main([str(source), "--blur", "1.0", "--exposure", "0.8", "--out", str(tmp_path / "out")]) == 0
    original, degraded = load_sequences(source, None), load_sequences(tmp_path / "out", None)
    assert len(degraded.pairs) == len(original.pairs) == 5

    def sharpness(image):
        return cv2.Laplacian(image.astype(np.float64), cv2.CV_64F).var()
    ratios = []
    for k in range(5):
        (a0, a1, Ha), (b0, b1, Hb) = original.load_pair(k), degraded.load_pair(k)
        np.testing.assert_array_equal(b0, a0)  # the reference is copied
        np.testing.assert_array_equal(Hb, Ha)
        assert abs(b1.mean() / a1.mean() - 0.8 ** (k + 1)) < 0.03  # image k + 2: exposure 0.8^(k+1)
        ratios.append(sharpness(b1) / sharpness(a1))
    assert all(r < 0.5 for r in ratios) and ratios == sorted(ratios, reverse=True)  # blurrier along the sequence
    assert degrade_main([str(source), "--jpeg", "10", "--out", str(tmp_path / "jpeg")]) == 0
    a1, b1 = original.load_pair(0)[1], load_sequences(tmp_path / "jpeg", None).load_pair(0)[1]
    assert a1.shape == b1.shape and 0 < np.abs(a1.astype(int) - b1.astype(int)).mean() < 10
    with pytest.raises(SystemExit):
        degrade_main([str(source), "--out", str(tmp_path / "nothing")])  # no degradation asked: a usage error
    assert degrade_main([str(source), "--blur", "1", "--out", str(tmp_path / "out")]) == 2  # not written over
