"""The public API: Matcher.load / match, checkpoints and their errors."""
import numpy as np
import pytest
import torch

from pygmatch import Matcher
from pygmatch.checkpoint import load_model, save_model
from pygmatch.data import list_images, read_gray
from pygmatch.errors import PygmatchError
from pygmatch.nn import GraphMatcher, MatcherConfig


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=200, graph={"graph": "knn", "k": 6, "cross": "complete"}))
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
    with pytest.raises(PygmatchError, match="no such checkpoint"):
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
