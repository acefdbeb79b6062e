"""The graph network as a matching stage: GraphMatching.load / match / prepare, checkpoints and their errors."""
import numpy as np
import pytest
import torch

from pygmatch.matching.graph import GraphMatching
from pygmatch.checkpoint import load_model, save_model
from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
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


def test_load_errors(tmp_path, tiny_ckpt):
    with pytest.raises(PygmatchError, match="missing.pt: no such checkpoint file or run folder"):
        GraphMatching.load(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(PygmatchError, match="corrupt.pt: not a readable checkpoint"):
        GraphMatching.load(tmp_path / "corrupt.pt")
    data = tiny_ckpt[0].read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PygmatchError, match="truncated.pt: not a readable checkpoint"):
        GraphMatching.load(tmp_path / "truncated.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(PygmatchError, match="not a pygmatch checkpoint"):
        GraphMatching.load(tmp_path / "foreign.pt")
    with pytest.raises(PygmatchError, match="no best.ckpt"):
        GraphMatching.load(tmp_path)
    with pytest.raises(PygmatchError, match="architecture and cannot be overridden"):
        GraphMatching.load(tiny_ckpt[0], dim=64)


def test_other_architecture_names_the_difference(tmp_path, tiny_ckpt):
    from pygmatch.checkpoint import load_weights, model_state, read_checkpoint
    cfg, state = model_state(read_checkpoint(tiny_ckpt[0]), tiny_ckpt[0])
    other = GraphMatcher(MatcherConfig(dim=64, layers=2, heads=2))
    with pytest.raises(PygmatchError, match="different architecture.*dim: checkpoint 32 vs model 64"):
        load_weights(other, state, tiny_ckpt[0], cfg)
    with pytest.raises(PygmatchError, match="weights do not fit this architecture.*shape mismatch"):
        load_weights(other, state, tiny_ckpt[0])


def test_inference_options_out_of_range_are_refused(tiny_ckpt):
    """match_threshold=5 used to load, match nothing and report precision nan."""
    for value in (5, 1.0, -0.1, float("nan")):
        with pytest.raises(PygmatchError, match=f"match_threshold must be a probability in \\[0, 1\\), got {value}"):
            GraphMatching.load(tiny_ckpt[0], match_threshold=value)
    with pytest.raises(PygmatchError, match="max_keypoints must be an integer >= 1, got 0"):
        GraphMatching.load(tiny_ckpt[0], max_keypoints=0)
    assert GraphMatching.load(tiny_ckpt[0], match_threshold=0).cfg.match_threshold == 0


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
    """``GraphMatching.prepare``: the model's graphs on the keypoints (what match_keypoints, eval.attention and
    benchmarks/matcher.py feed the network), with the image sizes given; other transforms on request."""
    from pygmatch.data.pair_data import make_pair_data
    from pygmatch.graphs import CompleteCross, KNNGraph

    m = GraphMatching.load(tiny_ckpt[0])
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
