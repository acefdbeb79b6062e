"""eval.attention: per-edge weights for dense and sparse graphs, groups, span, the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pygmatch.evaluation.attention import attention_span, group_keypoints, lookalikes, record_attention
from pygmatch.checkpoint import save_model
from pygmatch.data.pair_data import make_pair_data
from pygmatch.data.features import extract
from pygmatch.graphs import CompleteGraph, KNNGraph
from pygmatch.nn import GraphMatcher, MatcherConfig

from .conftest import ROOT, run_command


@pytest.fixture(scope="module")
def kp(image):
    return extract(image, "sift", 150)


@pytest.mark.parametrize("graph", [CompleteGraph(), KNNGraph(5)], ids=repr)
def test_records_normalised_per_edge_weights(kp, graph):
    torch.manual_seed(0)
    model = GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2)).eval()
    rec = record_attention(model, make_pair_data(kp, kp, (640, 480), graph, None))
    n = len(kp)
    for layer in range(2):
        for kind in ("self", "cross"):
            e, a = rec.edges(layer, kind, 0)
            assert a.shape == (e.shape[1], 2)
            sums = np.zeros((n, 2))
            np.add.at(sums, e[1], a)
            np.testing.assert_allclose(sums, 1, atol=1e-5)  # softmax over each node's incoming edges
    e, _ = rec.edges(0, "self", 0)
    assert e.shape[1] == (n * n if isinstance(graph, CompleteGraph) else n * 5)


def test_span_and_groups_on_a_hand_made_record():
    from pygmatch.evaluation.attention import AttentionRecord
    xy = np.array([[0.0, 0], [3, 4], [6, 8]])
    e = torch.tensor([[1, 2, 0], [0, 0, 1]])  # 0 attends to 1 and 2 (0.5 each); 1 attends to 0 (1.0)
    a = torch.tensor([[0.5], [0.5], [1.0]])
    la = torch.full((4, 4), -20.0)
    la[0, 0], la[1, 2] = np.log(0.9), np.log(0.5)
    rec = AttentionRecord([{"self": ([(e, a)], None), "cross": ((e, a), None)}], la, np.array([0, 2, -1]))
    span = attention_span(rec, xy, xy)
    assert span["self"][0] == pytest.approx((0.5 * 5 + 0.5 * 10 + 5) / 2)  # keypoint 2 attends to nothing: left out
    assert span["uniform_self"] == pytest.approx((0 + 5 + 10 + 5 + 0 + 5 + 10 + 5 + 0) / 9)
    assert list(group_keypoints(rec)) == ["easy", "medium", "hard"]
    assert list(group_keypoints(rec, np.array([0, 1, -1]))) == ["easy", "hard", ""]
    assert lookalikes(np.array([[1.0, 0], [1, 0.01], [0, 1]])).tolist() == [1, 1, 0]


def test_cli_writes_drawings_span_and_json(tmp_path, embedded_dir):
    torch.manual_seed(0)
    save_model(GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=200, graph={"name": "knn", "k": 6})), tmp_path / "m.pt")
    save_model(GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=200)), tmp_path / "complete.pt")
    image = sorted(embedded_dir.iterdir())[0]
    r = subprocess.run([sys.executable, "-m", "eval.attention", "--ckpt", tmp_path / "m.pt", "--image0", image, "--layers", "0,1",
                        "--per-head", "--compare", tmp_path / "complete.pt", "--out", tmp_path / "att"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    names = {p.name for p in (tmp_path / "att").iterdir()}
    assert {"layer0_self.png", "layer1_cross.png", "layer1_cross_head1.png", "attention_span.png", "attention.json"} <= names
    summary = json.loads((tmp_path / "att" / "attention.json").read_text())
    assert summary["ground_truth"] is True and set(summary["attention_span_px"]) == {"m", "complete"}
    knn, complete = summary["attention_span_px"]["m"], summary["attention_span_px"]["complete"]
    assert len(knn["self"]) == 2 and knn["uniform_self"] == pytest.approx(complete["uniform_self"])
    assert max(knn["self"]) < 0.3 * knn["uniform_self"]  # 6 nearest neighbours of 200 keypoints: local
    assert min(complete["self"]) > 0.5 * complete["uniform_self"]  # untrained, complete graph: near uniform
    bad = subprocess.run([sys.executable, "-m", "eval.attention", "--ckpt", tmp_path / "m.pt", "--image0", image, "--layers", "7"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "the model has layers 0..1" in bad.stderr



def attention_cli(argv, capsys):
    from eval.attention import main

    return run_command(main, argv, capsys)


def test_cli_bad_input_is_one_line(tmp_path, embedded_dir, readonly_dir, capsys):
    import cv2

    from .conftest import one_line_error

    torch.manual_seed(0)
    save_model(GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=100)), tmp_path / "m.pt")
    image = sorted(embedded_dir.iterdir())[0]
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640), 90, np.uint8))
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "att"
    cases = [
        (["--layers", "abc"], "error: --layers: expected comma-separated layer indices (0..1) or 'all', got 'abc'"),
        (["--layers", "0,x"], "error: --layers: expected comma-separated layer indices (0..1) or 'all', got '0,x'"),
        (["--layers", "5"], "error: --layers: the model has layers 0..1, got 5"),
        (["--image0", blank], f"error: {blank}: 0 SIFT keypoint(s) found, at least 2 are needed to look at attention"),
        (["--image1", blank], f"error: {blank}: 0 SIFT keypoint(s) found, at least 2 are needed"),
        (["--out", tmp_path / "a_file"], f"error: --out {tmp_path / 'a_file'}: exists and is not a folder"),
        (["--out", readonly_dir], f"error: --out {readonly_dir}: cannot write into this folder ("),
        (["--out", readonly_dir / "att"], f"error: --out {readonly_dir / 'att'}: cannot create the folder ("),
        (["--ckpt", tmp_path / "gone.pt"], f"error: {tmp_path / 'gone.pt'}: no such checkpoint file or run folder"),
        (["--threads", "0"], "argument --threads: expected a positive int, got '0'"),
    ]
    for args, message in cases:
        argv = ["--ckpt", tmp_path / "m.pt", "--image0", image, "--out", out]
        for k in range(0, len(args), 2):  # the case's flags replace the defaults
            if args[k] in argv:
                argv[argv.index(args[k]) + 1] = args[k + 1]
            else:
                argv += args[k:k + 2]
        code, stdout, err = attention_cli(argv, capsys)
        assert code == 2 and stdout == "", args
        assert message in one_line_error(err), (args, err)
    assert not out.exists() or not any(p.suffix in (".png", ".json") for p in out.iterdir())  # no drawing, no nan span


def test_cli_downscales_large_pairs(tmp_path, embedded_dir, capsys):
    import cv2

    torch.manual_seed(0)
    save_model(GraphMatcher(MatcherConfig(dim=32, layers=2, heads=2, max_keypoints=100)), tmp_path / "m.pt")
    image = sorted(embedded_dir.iterdir())[0]
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(image), cv2.IMREAD_GRAYSCALE), (2400, 1800)))
    code, stdout, err = attention_cli(["--ckpt", tmp_path / "m.pt", "--image0", big, "--image1", big, "--layers", "1", "--kind", "cross",
                                       "--max-side", 600, "--out", tmp_path / "att"], capsys)
    assert code == 0, err
    drawing = cv2.imread(str(tmp_path / "att" / "layer1_cross.png"))
    assert drawing.shape[0] == 450 and drawing.shape[1] == 2 * 600 + 10  # both images at 600 px, side by side


def test_candidate_graph_attention_is_recorded_and_drawn(tmp_path, embedded_dir, capsys):
    """The candidate graph network's attention: per layer, image and scale a softmax over each
    attending candidate's incoming edges, with the same output as a plain forward; the command
    draws one picture per layer and writes the span per layer."""
    from torch_geometric.utils import scatter

    from pygmatch.data import list_images, make_pair, pair_rng, read_gray
    from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph

    stage = CandidateGraphMatching.load("default")
    im0, im1, _ = make_pair(read_gray(list_images(embedded_dir)[0]), pair_rng(0, 0), 1.0)
    kp0, kp1 = extract(im0), extract(im1)
    _, data = candidate_graph(kp0, kp1, (640, 480), (640, 480), stage.cfg, stage.graph)
    out, layers = stage.model.attention(data)
    assert len(layers) == stage.cfg.layers
    with torch.no_grad():
        torch.testing.assert_close(out.score, stage.model(data).score)
    for layer in layers:
        for image, edges in (("0", data.edge_index0), ("1", data.edge_index1)):
            (e, w), = layer[image]
            assert torch.equal(e, edges) and w.shape == (edges.size(1), stage.cfg.heads)
            sums = scatter(w, e[1], 0, dim_size=data.num_nodes, reduce="sum")
            torch.testing.assert_close(sums[torch.unique(e[1])], torch.ones(len(torch.unique(e[1])), stage.cfg.heads))
    image = list_images(embedded_dir)[0]
    code, stdout, _ = attention_cli(["--ckpt", "candidate-graph", "--image0", image, "--layers", "0,3", "--out", tmp_path / "cg"], capsys)
    assert code == 0, stdout
    summary = json.loads((tmp_path / "cg" / "attention.json").read_text())
    assert sorted(p.name for p in (tmp_path / "cg").glob("*.png")) == ["layer0_candidates.png", "layer3_candidates.png"]
    assert summary["ground_truth"] and len(summary["chosen"]["correct"]) == 2 and summary["kept"] > 100
    assert all(2 < v < 100 for v in summary["attention_span_px"]["image0"])  # kNN 8 neighbours: tens of pixels away
    code, _, err = attention_cli(["--ckpt", "candidate-graph", "--image0", image, "--compare", "x", "--out", tmp_path / "c2"], capsys)
    assert code == 2 and "--compare" in err
