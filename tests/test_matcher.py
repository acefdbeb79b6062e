"""The public API: Matcher.load / match, checkpoints and their errors."""
import cv2
import numpy as np
import pytest
import torch

from pygmatch import Matcher
from pygmatch.checkpoint import load_model, save_model
from pygmatch.data import list_images, read_gray
from pygmatch.data.sequences import downscale
from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
from pygmatch.data.geometry import sample_homography, warp_points
from pygmatch.nn import GraphMatcher, MatcherConfig
from train.export import main as export_main

from .conftest import one_line_error, run_command


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=200, graph={"name": "knn", "k": 6}))
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.pt"), model


def test_checkpoint_round_trip(tiny_ckpt, embedded_dir):
    path, model = tiny_ckpt
    loaded = load_model(path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.cfg == model.cfg and not loaded.training


def test_match_paths_and_arrays(tiny_ckpt, embedded_dir):
    m = Matcher.load(tiny_ckpt[0])
    files = list_images(embedded_dir)
    out = m.match(files[0], files[0])
    assert out["keypoints0"].shape[1] == 2 and len(out["keypoints0"]) <= 200
    assert out["matches"].dtype == np.int64 and out["matches"].shape[1] == 2
    assert len(out["scores"]) == len(out["matches"])
    assert (out["matches"][:, 0] < len(out["keypoints0"])).all() and (out["matches"][:, 1] < len(out["keypoints1"])).all()
    gray = read_gray(files[0], None)
    bgr = np.repeat(gray[:, :, None], 3, axis=2)
    again = m.match(gray, bgr)  # arrays, gray or BGR, give the same keypoints as the path
    np.testing.assert_array_equal(again["keypoints0"], out["keypoints0"])
    np.testing.assert_array_equal(again["matches"], out["matches"])


def test_load_errors(tmp_path, tiny_ckpt):
    with pytest.raises(PygmatchError, match="missing.pt: no such checkpoint file or run folder"):
        Matcher.load(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(PygmatchError, match="corrupt.pt: not a readable checkpoint"):
        Matcher.load(tmp_path / "corrupt.pt")
    data = tiny_ckpt[0].read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PygmatchError, match="truncated.pt: not a readable checkpoint"):
        Matcher.load(tmp_path / "truncated.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(PygmatchError, match="not a pygmatch checkpoint"):
        Matcher.load(tmp_path / "foreign.pt")
    with pytest.raises(PygmatchError, match="no best.ckpt"):
        Matcher.load(tmp_path)
    with pytest.raises(PygmatchError, match="architecture and cannot be overridden"):
        Matcher.load(tiny_ckpt[0], dim=64)


def test_other_architecture_names_the_difference(tmp_path, tiny_ckpt):
    from pygmatch.checkpoint import load_weights, model_state, read_checkpoint
    cfg, state = model_state(read_checkpoint(tiny_ckpt[0]), tiny_ckpt[0])
    other = GraphMatcher(MatcherConfig(dim=64, layers=2, heads=2))
    with pytest.raises(PygmatchError, match="different architecture.*dim: checkpoint 32 vs model 64"):
        load_weights(other, state, tiny_ckpt[0], cfg)
    with pytest.raises(PygmatchError, match="weights do not fit this architecture.*shape mismatch"):
        load_weights(other, state, tiny_ckpt[0])


def test_bad_images(tiny_ckpt, tmp_path):
    m = Matcher.load(tiny_ckpt[0])
    with pytest.raises(PygmatchError, match="no such image file"):
        m.match(tmp_path / "nope.jpg", tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"xx")
    with pytest.raises(PygmatchError, match="bad.jpg: not a readable image"):
        m.match(tmp_path / "bad.jpg", tmp_path / "bad.jpg")
    with pytest.raises(PygmatchError, match="uint8"):
        m.match(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint8))


def test_inference_options_out_of_range_are_refused(tiny_ckpt):
    """match_threshold=5 used to load, match nothing and report precision nan."""
    for value in (5, 1.0, -0.1, float("nan")):
        with pytest.raises(PygmatchError, match=f"match_threshold must be a probability in \\[0, 1\\), got {value}"):
            Matcher.load(tiny_ckpt[0], match_threshold=value)
    with pytest.raises(PygmatchError, match="max_keypoints must be an integer >= 1, got 0"):
        Matcher.load(tiny_ckpt[0], max_keypoints=0)
    assert Matcher.load(tiny_ckpt[0], match_threshold=0).cfg.match_threshold == 0


def test_threads_are_set_for_the_matching_and_restored(tiny_ckpt, image, monkeypatch):
    seen = []
    forward = GraphMatcher.forward

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GraphMatcher, "forward", spy)
    kp = extract(image, "sift", 30)  # little work: more threads than free cores are slow on a busy machine
    size = (image.shape[1], image.shape[0])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        Matcher.load(tiny_ckpt[0]).match_keypoints(kp, kp, size)  # default: 1 thread
        Matcher.load(tiny_ckpt[0], threads=None).match_keypoints(kp, kp, size)  # torch's own setting
        assert torch.get_num_threads() == 2  # restored
        torch.set_num_threads(1)
        Matcher.load(tiny_ckpt[0], threads=2).match_keypoints(kp, kp, size)
        assert seen == [1, 2, 2] and torch.get_num_threads() == 1  # restored
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(PygmatchError, match=f"threads must be an integer >= 1 \\(or None to keep torch's setting\\), got {bad}"):
            Matcher.load(tiny_ckpt[0], threads=bad)


@pytest.fixture(scope="module")
def shipped():
    return Matcher.load("default")


def test_a_large_image_is_matched_at_1024_px_in_its_own_pixels(shipped, embedded_dir):
    """An 8000x6000 photograph took 65 s and 11.5 GB of SIFT. Now images are downscaled to 1024 px
    for extraction and matching, and the keypoints come back in the original pixels."""
    big = cv2.resize(read_gray(list_images(embedded_dir)[0], None), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    H = sample_homography((4000, 3000), np.random.default_rng(3), 0.5)
    warped = cv2.warpPerspective(big, H, (4000, 3000))
    out = shipped.match(big, warped)
    kp0, kp1, m = out["keypoints0"], out["keypoints1"], out["matches"]
    assert len(kp0) == len(kp1) == 1024
    for kp in (kp0, kp1):  # the original image's coordinates, all of it
        assert kp.min() >= -0.5 and kp[:, 0].max() <= 4000 and kp[:, 1].max() <= 3000
        assert kp[:, 0].max() > 3000 and kp[:, 1].max() > 2200
    assert len(m) > 400
    err = np.linalg.norm(warp_points(kp0[m[:, 0]], H) - kp1[m[:, 1]], axis=1)  # measured: median 0.3 px, 99 % < 12 px
    # 1024 px is 1/3.9 of the original: 3 px there is ~12 px here
    assert np.median(err) < 2 and (err < 12).mean() > 0.95, (np.median(err), (err < 12).mean())

    # exactly the keypoints of the 1024 px image, mapped back; sizes too
    small, S = downscale(big, 1024)
    assert small.shape == (768, 1024)
    ref = extract(small, "sift", 1024)
    s = S[0, 0]
    np.testing.assert_allclose(kp0, (ref.xy + 0.5) / s - 0.5, atol=1e-3)
    _, kp_api = shipped.extract(big)
    np.testing.assert_allclose(kp_api.xy, kp0)
    np.testing.assert_allclose(kp_api.scale, ref.scale / s, rtol=1e-5)


def test_resize_options(tiny_ckpt, embedded_dir):
    file = list_images(embedded_dir)[0]
    gray = read_gray(file, None)
    default = Matcher.load(tiny_ckpt[0]).match(file, file)  # 640 px: not resized at 1024
    off = Matcher.load(tiny_ckpt[0], resize=None).match(file, file)
    np.testing.assert_array_equal(default["keypoints0"], extract(gray, "sift", 200).xy)
    np.testing.assert_array_equal(off["keypoints0"], default["keypoints0"])
    half = Matcher.load(tiny_ckpt[0], resize=gray.shape[1] // 2).match(file, file)
    assert half["keypoints0"][:, 0].max() > 0.8 * gray.shape[1]  # found at half size, in full-size pixels
    for bad in (0, 10, 512.5, "big"):
        with pytest.raises(PygmatchError, match="resize must be a number of pixels >= 32"):
            Matcher.load(tiny_ckpt[0], resize=bad)


def export(argv, capsys):
    return run_command(export_main, argv, capsys)


def test_export_and_save_model_report_what_they_cannot_write(tmp_path, tiny_ckpt, readonly_dir, capsys):
    src = tiny_ckpt[0]
    (tmp_path / "a_file").write_text("x")
    cases = [
        (readonly_dir / "m.pt", f"error: --out {readonly_dir / 'm.pt'}: cannot write into the folder {readonly_dir} ("),
        (readonly_dir / "sub" / "m.pt", f"error: --out {readonly_dir / 'sub' / 'm.pt'}: cannot create the folder {readonly_dir / 'sub'} ("),
        (tmp_path, f"error: --out {tmp_path}: is a folder; give a file name such as {tmp_path / 'model.pt'}"),
        (tmp_path / "a_file" / "m.pt", f"error: --out {tmp_path / 'a_file' / 'm.pt'}: {tmp_path / 'a_file'} is a file, not a folder"),
    ]
    for out, message in cases:
        code, _, err = export([src, "--out", out], capsys)
        assert code == 2 and one_line_error(err).startswith(message), err
    code, _, err = export([src, "--out", tmp_path / "m.pt", "--match-threshold", "2"], capsys)
    assert code == 2 and "argument --match-threshold: expected a probability threshold in [0, 1), got '2'" in one_line_error(err)
    code, stdout, err = export([src, "--out", tmp_path / "new" / "m.pt", "--match-threshold", "0.3"], capsys)
    assert code == 0, err
    assert load_model(tmp_path / "new" / "m.pt").cfg.match_threshold == 0.3
    with pytest.raises(PygmatchError, match=f"{readonly_dir / 'm.pt'}: cannot write into the folder"):
        save_model(tiny_ckpt[1], readonly_dir / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "new", "readonly"]  # nothing else written
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["m.pt"]  # no temporary file left


def test_prepare_is_the_pair_match_keypoints_runs(tiny_ckpt, image):
    """``Matcher.prepare``: the model's graphs on the keypoints (what match_keypoints, eval.attention and
    benchmarks/matcher.py feed the network), with the image sizes given; other transforms on request."""
    from pygmatch.data.pair_data import make_pair_data
    from pygmatch.graphs import CompleteCross, KNNGraph

    m = Matcher.load(tiny_ckpt[0])
    kp0, kp1 = extract(image, "sift", 120), extract(image[:400, :500], "sift", 100)
    pair = m.prepare(kp0, kp1, (640, 480), (500, 400))
    expected = make_pair_data(kp0, kp1, (640, 480), KNNGraph(6), CompleteCross(), image_size1=(500, 400))
    assert sorted(pair.keys()) == sorted(expected.keys())
    for key in expected.keys():
        a, b = pair[key], expected[key]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, key
    with torch.no_grad():
        out = m.model(pair)
    ref = m.match_keypoints(kp0, kp1, (640, 480), (500, 400))
    m0 = out.matches0[0].numpy()
    assert np.array_equal(ref["matches"], np.stack([np.nonzero(m0 >= 0)[0], m0[m0 >= 0]], 1).reshape(-1, 2))
    other = m.prepare(kp0, kp1, (640, 480), graph=KNNGraph(3))
    assert other.edge_index_0.size(1) == 3 * len(kp0) and torch.equal(other.image_size_1, other.image_size_0)
