"""``pygmatch.Pipeline``: extract → match → refine on two images, presets, features reused across
pairs, positions in the original pixels, threads, bad input."""
import re

import cv2
import numpy as np
import pytest
import torch

import pygmatch
from pygmatch.data.features import DEFAULT_CONTRAST_THRESHOLD, DEFAULT_MAX_KEYPOINTS
from pygmatch import Pipeline
from pygmatch.checkpoint import save_model
from pygmatch.data import list_images, read_gray
from pygmatch.data.features import extract
from pygmatch.data.geometry import corner_error, sample_homography, warp_points
from pygmatch.data.images import downscale
from pygmatch.errors import PygmatchError
from pygmatch.matching import CandidateGraphMatching, NearestNeighbor, Oracle
from pygmatch.refinement import LearnedRefiner, PatchRefiner
from pygmatch.nn import CandidateGraphConfig, CandidateGraphNet
from pygmatch.pipeline import is_learned


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """An untrained small graph network as a model file (train.export's format)."""
    torch.manual_seed(0)
    model = CandidateGraphNet(CandidateGraphConfig(dim=16, layers=2, heads=2, graph={"name": "knn", "k": 6}, threshold=0.3))
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def real_pair(embedded_dir):
    """An embedded photograph and its warp by a known homography (640x480)."""
    image = read_gray(list_images(embedded_dir)[0])
    H = sample_homography((640, 480), np.random.default_rng(5), 1.0)
    return image, cv2.warpPerspective(image, H, (640, 480)), H


def test_the_readme_use(real_pair, tmp_path):
    """What README shows, on a path and an array: the shipped default is SIFT → candidate graph
    network (threshold 0.2) → learned refiner, its homography is close to the truth, and features
    extracted once match again."""
    image0, image1, H = real_pair
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), image0)
    pipe = pygmatch.Pipeline.load("default")
    assert isinstance(pipe.matcher, CandidateGraphMatching) and isinstance(pipe.refiner, LearnedRefiner)
    assert pipe.matcher.cfg.threshold == 0.2 and Pipeline.load("default", match_threshold=0.4).matcher.cfg.threshold == 0.4
    assert Pipeline.load("candidate-graph+refiner").matcher.cfg.threshold == 0.5  # the file's own
    with pytest.raises(PygmatchError, match="unknown matcher option"):
        Pipeline.load("default", min_keeps=None)  # a misspelt option is refused, even without a value
    res = pipe.match(path, image1)
    assert res.keypoints0.shape[1] == 2 and res.matches.dtype == np.int64 and res.matches.shape[1] == 2
    assert len(res.scores) == len(res.points0) == len(res.points1) == len(res.matches) > 100
    np.testing.assert_array_equal(res.points0, res.keypoints0[res.matches[:, 0]])
    moved = np.linalg.norm(res.points1 - res.keypoints1[res.matches[:, 1]], axis=1)
    assert 0 < moved.max() <= 3 * np.sqrt(2) + 1e-9  # refined, within the refiner's search window
    assert corner_error(res.homography(), H, (640, 480)) < 1.0
    f0 = pipe.extract(path)
    again = pipe.match(f0, pipe.extract(image1))
    np.testing.assert_array_equal(again.matches, res.matches)
    np.testing.assert_array_equal(again.points1, res.points1)
    unrefined = Pipeline.load("default", refine=None).match(f0, image1)
    np.testing.assert_array_equal(unrefined.matches, res.matches)
    np.testing.assert_array_equal(unrefined.points1, res.keypoints1[res.matches[:, 1]])


def test_presets_parse_into_their_stages(tiny_ckpt, real_pair):
    cases = {"nn": (NearestNeighbor, type(None)), "nn-ratio+ncc": (NearestNeighbor, PatchRefiner),
             "candidate-graph": (CandidateGraphMatching, type(None)), "default": (CandidateGraphMatching, LearnedRefiner),
             f"{tiny_ckpt}+ncc": (CandidateGraphMatching, PatchRefiner), "candidate-graph+refiner": (CandidateGraphMatching, LearnedRefiner),
             "oracle@2": (Oracle, type(None))}
    for name, (matcher, refiner) in cases.items():
        pipe = Pipeline.load(name)
        assert isinstance(pipe.matcher, matcher) and isinstance(pipe.refiner, refiner), name
        assert is_learned(name) == (matcher is CandidateGraphMatching), name
    assert Pipeline.load("nn-ratio").matcher.ratio == 0.8 and Pipeline.load("nn").matcher.ratio is None
    assert Pipeline.load("nn", refine="ncc").refiner is not None
    tiny = Pipeline.load(str(tiny_ckpt))
    assert tiny.matcher.cfg.dim == 16 and tiny.matcher.cfg.threshold == 0.3  # the file's own network and options
    assert Pipeline.load(str(tiny_ckpt), match_threshold=0.7).matcher.cfg.threshold == 0.7
    assert Pipeline.load("candidate-graph", match_threshold=0.9).matcher.cfg.threshold == 0.9
    custom = Pipeline.load("candidate-graph", min_keep=5, pad_from=0).matcher.cfg
    assert (custom.min_keep, custom.pad_from, custom.threshold) == (5, 0, 0.5)
    with pytest.raises(PygmatchError, match="unknown matcher option\\(s\\) treshold: choose from match_threshold, min_keep, pad_from"):
        Pipeline.load("candidate-graph", treshold=0.9)
    with pytest.raises(PygmatchError, match="unknown matcher option\\(s\\) early_exit"):
        Pipeline.load("candidate-graph", early_exit=True)  # the removed attention matcher's option
    for bad, message in [("nope", "unknown matcher 'nope'"), ("nn+nope", "unknown refinement 'nope' after '+'"),
                         ("graph", "unknown matcher 'graph'"), ("verifier+refiner", "unknown matcher 'verifier'"),
                         ("missing/model.pt", "missing/model.pt: no such model file, checkpoint or run folder"),
                         ("oracle@-1", "bad method 'oracle@-1'")]:
        with pytest.raises(PygmatchError, match=re.escape(message)):
            Pipeline.load(bad)
    with pytest.raises(PygmatchError, match="trained on sift keypoints, but the extractor finds orb"):
        Pipeline.load("candidate-graph", features="orb")
    orb = Pipeline.load("nn", features="orb")
    with pytest.raises(PygmatchError, match="these features have 256-dimensional descriptors, but this pipeline matches sift"):
        Pipeline.load("nn").match(orb.extract(real_pair[0]), real_pair[1])


def test_matcher_options_only_go_to_the_graph_network():
    """``match_threshold``, ``min_keep`` and ``pad_from`` are the graph network's: given to another
    matcher they are a one-line error, not silently ignored; out of range they are refused."""
    for name, option in (("nn", "match_threshold"), ("nn-ratio+ncc", "min_keep"), ("nn-oracle@1", "pad_from")):
        with pytest.raises(PygmatchError) as e:
            Pipeline.load(name, **{option: 0.5 if option == "match_threshold" else 3})
        assert str(e.value) == f"{name.split('+')[0]}: takes no matcher options (got {option}); they are the graph network's"
    assert Pipeline.load("nn", match_threshold=None, min_keep=None).matcher.ratio is None  # unset options are no options
    for options, message in (({"match_threshold": 5}, "expected a probability threshold in [0, 1), got '5'"),
                             ({"match_threshold": -0.1}, "expected a probability threshold in [0, 1), got '-0.1'"),
                             ({"match_threshold": 1.0}, "expected a probability threshold in [0, 1), got '1.0'"),
                             ({"min_keep": -2}, "min_keep: expected an integer >= 0, got '-2'")):
        with pytest.raises(PygmatchError, match=re.escape(message)) as e:
            Pipeline.load("default", **options)
        assert "\n" not in str(e.value)
    assert Pipeline.load("default", match_threshold=0.0).matcher.cfg.threshold == 0.0  # the edge of the range is taken


def test_the_shipped_candidate_graph_matches_a_real_pair(real_pair):
    """The candidate graph network as a pipeline stage, on an embedded photograph and its warp:
    precise matches and a homography close to the truth."""
    image0, image1, H = real_pair
    res = Pipeline.load("candidate-graph+refiner").match(image0, image1)
    err = np.linalg.norm(warp_points(res.points0, H) - res.points1, axis=1)
    assert len(res) > 100 and np.mean(err < 1) > 0.9 and corner_error(res.homography(), H, (640, 480)) < 1.0


def test_an_oracle_only_runs_in_the_evaluation(real_pair):
    pipe = Pipeline.load("nn-oracle@1")
    with pytest.raises(PygmatchError, match="nn-oracle@1: an oracle reads the true homography; only the evaluation runs it"):
        pipe.match(real_pair[0], real_pair[1])
    f0, f1 = pipe.extract(real_pair[0]), pipe.extract(real_pair[1])
    res = pipe.result(f0, f1, *pipe.matcher.match_truth(f0.keypoints, f1.keypoints, real_pair[2]))
    err = np.linalg.norm(warp_points(res.points0, real_pair[2]) - res.points1, axis=1)
    assert len(res) > 50 and err.max() < 1


def test_match_paths_and_arrays(tiny_ckpt, embedded_dir):
    m = Pipeline.load(str(tiny_ckpt))
    files = list_images(embedded_dir)
    out = m.match(files[0], files[0])
    assert out.keypoints0.shape[1] == 2 and len(out.keypoints0) <= DEFAULT_MAX_KEYPOINTS
    assert (out.matches[:, 0] < len(out.keypoints0)).all() and (out.matches[:, 1] < len(out.keypoints1)).all()
    gray = read_gray(files[0], None)
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    again = m.match(gray, bgr)  # arrays, gray or BGR, give the same keypoints as the path
    np.testing.assert_array_equal(again.keypoints0, out.keypoints0)
    np.testing.assert_array_equal(again.matches, out.matches)


def test_bad_images(tmp_path):
    m = Pipeline.load("nn")
    with pytest.raises(PygmatchError, match="no such image file"):
        m.match(tmp_path / "nope.jpg", tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    with pytest.raises(PygmatchError, match="bad.jpg: not a readable image"):
        m.match(tmp_path / "bad.jpg", tmp_path / "bad.jpg")
    with pytest.raises(PygmatchError, match="image array: image is 10x10, smaller than 32 px"):
        m.match(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint8))
    with pytest.raises(PygmatchError, match="expected H×W, H×W×3 \\(BGR\\) or H×W×4 \\(BGRA\\), got shape \\(1, 64, 64, 3\\)"):
        m.match(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8))


def test_threads_are_set_for_the_matching_and_restored(tiny_ckpt, image, monkeypatch):
    seen = []
    forward = CandidateGraphNet.forward

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(CandidateGraphNet, "forward", spy)
    small = image[:200, :200]  # little work: more threads than free cores are slow on a busy machine
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Pipeline.load(str(tiny_ckpt)).match(small, small)  # default: 1 thread
        Pipeline.load(str(tiny_ckpt), threads=None).match(small, small)  # torch's own setting
        assert torch.get_num_threads() == 2  # restored
        torch.set_num_threads(1)
        Pipeline.load(str(tiny_ckpt), threads=2).match(small, small)
        assert seen == [1, 2, 2] and torch.get_num_threads() == 1  # restored
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PygmatchError, match=f"threads must be an integer >= 1 \\(or None to keep torch's setting\\), got {bad}"):
            Pipeline.load("nn", threads=bad)


def test_a_large_image_is_matched_at_1024_px_in_its_own_pixels(embedded_dir):
    """An 8000x6000 photograph took 65 s and 11.5 GB of SIFT. Images are downscaled to 1024 px
    for extraction and matching, and every position comes back in the original pixels."""
    big = cv2.resize(read_gray(list_images(embedded_dir)[0], None), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    H = sample_homography((4000, 3000), np.random.default_rng(3), 0.5)
    warped = cv2.warpPerspective(big, H, (4000, 3000))
    pipe = Pipeline.load("default")
    out = pipe.match(big, warped)
    kp0, kp1, m = out.keypoints0, out.keypoints1, out.matches
    assert len(kp0) == len(kp1) == DEFAULT_MAX_KEYPOINTS
    for kp in (kp0, kp1):  # the original image's coordinates, all of it
        assert kp.min() >= -0.5 and kp[:, 0].max() <= 4000 and kp[:, 1].max() <= 3000
        assert kp[:, 0].max() > 3000 and kp[:, 1].max() > 2200
    assert len(m) > 300
    err = np.linalg.norm(warp_points(out.points0, H) - out.points1, axis=1)
    # 1024 px is 1/3.9 of the original: 1 px there is ~4 px here
    assert np.median(err) < 2 and (err < 12).mean() > 0.95, (np.median(err), (err < 12).mean())
    assert corner_error(out.homography(threshold=12.0), H, (4000, 3000)) < 4

    # exactly the keypoints of the 1024 px image, mapped back
    small, S = downscale(big, 1024)
    assert small.shape == (768, 1024)
    ref = extract(small, "sift", DEFAULT_MAX_KEYPOINTS, DEFAULT_CONTRAST_THRESHOLD)
    s = S[0, 0]
    np.testing.assert_allclose(kp0, (ref.xy + 0.5) / s - 0.5, atol=1e-3)
    features = pipe.extract(big)
    np.testing.assert_allclose(features.xy, kp0)
    assert features.original_size == (4000, 3000) and features.size == (1024, 768)


def test_resize_options(embedded_dir):
    file = list_images(embedded_dir)[0]
    gray = read_gray(file, None)
    default = Pipeline.load("nn", max_keypoints=200).match(file, file)  # 640 px: not resized at 1024
    off = Pipeline.load("nn", max_keypoints=200, resize=None).match(file, file)
    np.testing.assert_array_equal(default.keypoints0, extract(gray, "sift", 200, DEFAULT_CONTRAST_THRESHOLD, "spread").xy)  # below 4096: spread
    np.testing.assert_array_equal(off.keypoints0, default.keypoints0)
    half = Pipeline.load("nn", max_keypoints=200, resize=gray.shape[1] // 2).match(file, file)
    assert half.keypoints0[:, 0].max() > 0.8 * gray.shape[1]  # found at half size, in full-size pixels
    for bad in (0, 10, 512.5, "big"):
        with pytest.raises(PygmatchError, match="resize must be a number of pixels >= 32"):
            Pipeline.load("nn", resize=bad)


def test_the_contrast_threshold_option(embedded_dir):
    """The pipelines find SIFT at COLMAP's contrast threshold unless told otherwise; the threshold
    is part of what a store of features is made by."""
    from pygmatch.sfm import pipeline_config

    file = list_images(embedded_dir)[0]
    loose, strict = Pipeline.load("nn", max_keypoints=100_000), Pipeline.load("nn", max_keypoints=100_000, contrast_threshold=0.04)
    assert loose.extractor.contrast_threshold == DEFAULT_CONTRAST_THRESHOLD == 0.02
    np.testing.assert_array_equal(loose.extract(file).xy, extract(read_gray(file, None), "sift", 100_000, 0.02).xy)
    assert len(loose.extract(file)) > 1.3 * len(strict.extract(file))
    assert "contrast_threshold=0.04" in repr(strict) and pipeline_config(loose) != pipeline_config(strict)
    for bad in (0, 1, "low"):
        with pytest.raises(PygmatchError, match="contrast threshold must be a number in \\(0, 1\\)"):
            Pipeline.load("nn", contrast_threshold=bad)


def test_homography_needs_four_matches_and_a_valid_method(real_pair):
    res = Pipeline.load("nn").match(real_pair[0], real_pair[1])
    assert res.homography(method="dlt").shape == (3, 3)
    with pytest.raises(PygmatchError, match="method must be 'ransac' or 'dlt'"):
        res.homography(method="magsac")
    few = Pipeline.load("nn").result(res.features0, res.features1, res.matches[:3], res.scores[:3])
    assert few.homography() is None


def test_views_auto_synthesises_views_only_where_the_plain_match_fails(image, real_pair):
    """A tilt of 5 (the image squeezed 5 times along one axis and turned): the plain match finds
    (almost) nothing, views="auto" matches ASIFT keypoints and recovers the homography. A pair the
    plain match solves gets exactly the plain result."""
    from pygmatch.pipeline import SYNTHESIS_MIN_INLIERS, inlier_count

    h, w = image.shape
    turn = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0), [0, 0, 1]])
    H = np.array([[1, 0, 0], [0, 1, h * 0.3], [0, 0, 1]]) @ np.diag([1.0, 0.2, 1.0]) @ turn
    warped = cv2.warpPerspective(image, H, (w, h))
    plain, auto = Pipeline.load("default"), Pipeline.load("default", views="auto")
    assert inlier_count(plain.match(image, warped)) < SYNTHESIS_MIN_INLIERS
    res = auto.match(image, warped)
    assert inlier_count(res) >= SYNTHESIS_MIN_INLIERS
    assert corner_error(res.homography(), H, (w, h)) < 3
    # the rounds are matched by the ratio test against the first geometrically inconsistent
    # neighbour whatever the matcher: the same matches with the ratio test's pipeline
    ratio = Pipeline.load("nn-ratio+refiner", views="auto").match(image, warped)
    np.testing.assert_array_equal(ratio.matches, res.matches)
    im0, im1 = real_pair[:2]
    a, b = plain.match(im0, im1), auto.match(im0, im1)
    assert inlier_count(a) >= SYNTHESIS_MIN_INLIERS
    np.testing.assert_array_equal(a.matches, b.matches)
    np.testing.assert_array_equal(a.points1, b.points1)
    with pytest.raises(PygmatchError, match="views must be one of plain, auto"):
        Pipeline.load("default", views="always")
