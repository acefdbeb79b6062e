"""eval.attention: the graph network's per-edge attention for sparse, complete and multi-scale
graphs, the span, the chosen candidates, the drawings and the CLI."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch_geometric.utils import scatter

from pygmatch.checkpoint import save_model
from pygmatch.data import list_images, make_pair, pair_rng, read_gray
from pygmatch.data.features import extract
from pygmatch.evaluation.attention import attention_span, choose_candidates, draw_weighted_edges
from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph
from pygmatch.nn import CandidateGraphConfig, CandidateGraphNet

from .conftest import ROOT, one_line_error, run_command


def tiny(graph: dict, layers: int = 2) -> CandidateGraphNet:
    torch.manual_seed(0)
    return CandidateGraphNet(CandidateGraphConfig(dim=16, layers=layers, heads=2, graph=graph)).eval()


@pytest.fixture(scope="module")
def pair(embedded_dir):
    """An embedded photograph and its warp, with 300 SIFT keypoints each."""
    im0, im1, H = make_pair(read_gray(list_images(embedded_dir)[0]), pair_rng(0, 0), 1.0)
    return im0, im1, H, extract(im0, "sift", 300), extract(im1, "sift", 300)


@pytest.mark.parametrize("graph, edges_per_node", [({"name": "knn", "k": 5}, [5]), ({"name": "complete"}, ["all"]),
                                                   ({"name": "multiscale", "ks": [3, 6, "all"], "mode": "disjoint"}, [3, 3, "rest"])],
                         ids=["knn", "complete", "multiscale"])
def test_records_normalised_per_edge_weights(pair, graph, edges_per_node):
    """Per layer, image and scale: a softmax of each head over every candidate's incoming edges,
    and the same output as a plain forward."""
    model = tiny(graph)
    _, _, _, kp0, kp1 = pair
    _, data = candidate_graph(kp0, kp1, (640, 480), (640, 480), model.cfg)
    n = data.num_nodes
    assert n > 50
    out, layers = model.attention(data)
    torch.testing.assert_close(out.score, model(data).score)
    assert len(layers) == 2
    for layer in layers:
        for image in ("0", "1"):
            assert len(layer[image]) == len(edges_per_node)
            for (e, w), per_node in zip(layer[image], edges_per_node):
                assert w.shape == (e.size(1), 2) and (e[0] != e[1]).all()
                expected = {"all": n * (n - 1), "rest": n * (n - 1 - 6)}.get(per_node, n * per_node if per_node != "all" else None)
                assert e.size(1) == expected
                sums = scatter(w, e[1], 0, dim_size=n, reduce="sum")
                torch.testing.assert_close(sums, torch.ones(n, 2))  # every candidate attends somewhere


def test_span_on_hand_made_weights():
    pos0 = np.array([[0.0, 0], [3, 4], [6, 8]])
    e = torch.tensor([[1, 2, 0], [0, 0, 1]])  # 0 attends to 1 and 2 (0.5 each, mean of heads); 1 attends to 0 (1.0)
    w = torch.tensor([[0.4, 0.6], [0.6, 0.4], [1.0, 1.0]])
    pos1 = 2 * pos0
    layers = [{"0": [(e, w)], "1": [(e, w)]},
              {"0": [(e[:, 2:], w[2:]), (e[:, :2], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))], "1": [(torch.zeros(2, 0, dtype=torch.long), None)]}]
    span = attention_span(layers, pos0, pos1)
    assert span["0"][0] == pytest.approx((0.5 * 5 + 0.5 * 10 + 5) / 2)  # keypoint 2 attends to nothing: left out
    assert span["1"][0] == pytest.approx(2 * span["0"][0])
    assert span["0"][1] == pytest.approx((5 + 5) / 2)  # two scales: each attending candidate's span in each
    assert np.isnan(span["1"][1])  # no recorded weights (no attention messages): no span


def test_choose_candidates_takes_the_most_confident_of_each_group():
    score = np.array([0.9, 0.1, 0.8, 0.7, 0.3])
    error = np.array([0.5, 0.2, 5.0, 2.0, 10.0])  # candidate 3 (2 px) is neither correct (< 1) nor wrong (> 3)
    assert choose_candidates(score, error, 0.5) == {"correct": [0, 1], "wrong": [2, 4]}
    assert choose_candidates(score, None, 0.5) == {"kept": [0, 2], "dropped": [4, 1]}
    assert choose_candidates(score, None, 0.5, per_group=1) == {"kept": [0], "dropped": [4]}
    assert choose_candidates(score, np.full(5, 9.0), 0.5) == {"correct": [], "wrong": [0, 2]}


def test_weighted_edges_are_brighter_the_larger_their_weight():
    canvas = np.zeros((50, 50, 3), np.uint8)
    draw_weighted_edges(canvas, (5, 25), np.array([[45.0, 5], [45, 45]]), np.array([1.0, 0.1]), np.array([0, 0, 200]))
    strong, weak = canvas[15, 25, 2], canvas[35, 25, 2]  # the middles of the two lines
    assert strong > 150 and 40 < weak < 0.7 * strong
    assert not canvas[..., :2].any()  # in the colour given only
    blank = np.zeros_like(canvas)
    draw_weighted_edges(blank, (5, 25), np.zeros((0, 2)), np.zeros(0), np.array([0, 0, 200]))
    assert not blank.any()


def attention_cli(argv, capsys):
    from eval.attention import main

    return run_command(main, argv, capsys)


def test_cli_writes_drawings_span_and_json(tmp_path, embedded_dir, capsys):
    save_model(tiny({"name": "knn", "k": 6}), tmp_path / "m.pt")
    save_model(tiny({"name": "complete"}), tmp_path / "complete.pt")
    image = list_images(embedded_dir)[0]
    r = subprocess.run([sys.executable, "-m", "eval.attention", *map(str, ["--ckpt", tmp_path / "m.pt", "--image0", image, "--layers", "0,1",
                        "--max-keypoints", 300, "--compare", tmp_path / "complete.pt", "--out", tmp_path / "att"])],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == ["attention.json", "attention_span.png", "layer0.png", "layer1.png"]
    drawing = cv2.imread(str(tmp_path / "att" / "layer1.png"))
    assert drawing.shape == (480, 2 * 640 + 10, 3)  # image 0 and its warp, side by side
    summary = json.loads((tmp_path / "att" / "attention.json").read_text())
    assert summary["ground_truth"] is True and set(summary["attention_span_px"]) == {"m", "complete"}
    assert set(summary["chosen"]) == {"correct", "wrong"} and summary["candidates"] > 50
    knn, complete = summary["attention_span_px"]["m"], summary["attention_span_px"]["complete"]
    assert len(knn["0"]) == len(knn["1"]) == 2
    # 6 nearest neighbours of the candidates: local; untrained over the complete graph: near uniform, far
    assert max(knn["0"] + knn["1"]) < 0.3 * min(complete["0"] + complete["1"])
    assert all(2 < v < 60 for v in knn["0"])
    assert "span (px) per layer of m" in r.stdout and "span (px) per layer of complete" in r.stdout
    code, _, err = attention_cli(["--ckpt", tmp_path / "m.pt", "--image0", image, "--layers", "7", "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "the model has layers 0..1, got 7" in one_line_error(err)


def test_cli_bad_input_is_one_line(tmp_path, embedded_dir, readonly_dir, capsys):
    save_model(tiny({"name": "knn", "k": 4}), tmp_path / "m.pt")
    image = list_images(embedded_dir)[0]
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
        (["--max-keypoints", "5"], "mutual nearest neighbours, fewer than 8: nothing for the network to judge"),
        (["--out", tmp_path / "a_file"], f"error: --out {tmp_path / 'a_file'}: exists and is not a folder"),
        (["--out", readonly_dir], f"error: --out {readonly_dir}: cannot write into this folder ("),
        (["--out", readonly_dir / "att"], f"error: --out {readonly_dir / 'att'}: cannot create the folder ("),
        (["--ckpt", tmp_path / "gone.pt"], f"error: {tmp_path / 'gone.pt'}: no such model file, checkpoint or run folder"),
        (["--threads", "0"], "argument --threads: expected a positive int, got '0'"),
        (["--kind", "cross"], "unrecognized arguments: --kind cross"),  # the attention matcher's options are gone
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
    code, _, err = attention_cli(["--ckpt", tmp_path / "m.pt", "--image0", image, "--compare", tmp_path / "gone.pt", "--out", out], capsys)
    assert code == 2 and f"error: {tmp_path / 'gone.pt'}: no such model file, checkpoint or run folder" in one_line_error(err)


def test_cli_downscales_large_pairs(tmp_path, embedded_dir, capsys):
    save_model(tiny({"name": "knn", "k": 4}), tmp_path / "m.pt")
    image = list_images(embedded_dir)[0]
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), cv2.resize(cv2.imread(str(image), cv2.IMREAD_GRAYSCALE), (2400, 1800)))
    code, stdout, err = attention_cli(["--ckpt", tmp_path / "m.pt", "--image0", big, "--image1", big, "--layers", "1",
                                       "--max-keypoints", 300, "--max-side", 600, "--out", tmp_path / "att"], capsys)
    assert code == 0, err
    drawing = cv2.imread(str(tmp_path / "att" / "layer1.png"))
    assert drawing.shape[0] == 450 and drawing.shape[1] == 2 * 600 + 10  # both images at 600 px, side by side
    summary = json.loads((tmp_path / "att" / "attention.json").read_text())
    assert summary["ground_truth"] is False and set(summary["chosen"]) == {"kept", "dropped"}


def test_shipped_network_attention_is_recorded_and_drawn(tmp_path, pair, embedded_dir, capsys):
    """The shipped network's attention on a real pair: per layer and image a softmax over each
    attending candidate's incoming edges, with the same output as a plain forward; the command
    (``--ckpt default``) draws one picture per layer and writes the span per layer."""
    stage = CandidateGraphMatching.load("default")
    im0, im1, _, _, _ = pair
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
    code, stdout, err = attention_cli(["--ckpt", "default", "--image0", image, "--layers", "0,3", "--out", tmp_path / "cg"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "cg" / "attention.json").read_text())
    assert sorted(p.name for p in (tmp_path / "cg").glob("*.png")) == ["attention_span.png", "layer0.png", "layer3.png"]
    assert summary["ground_truth"] and len(summary["chosen"]["correct"]) == 2 and summary["kept"] > 100
    assert set(summary["attention_span_px"]) == {"default"}
    span = summary["attention_span_px"]["default"]
    assert len(span["0"]) == stage.cfg.layers and all(2 < v < 100 for v in span["0"] + span["1"])  # kNN 8: tens of pixels away


def test_cli_keeps_an_earlier_output_unless_overwrite_and_never_writes_over_an_input(tmp_path, embedded_dir, capsys):
    """Issue #32: every writer follows ``pygmatch match``'s rule (``pygmatch.files.check_outputs``);
    eval.attention replaced an earlier run's drawings and attention.json silently."""
    import shutil

    save_model(tiny({"name": "knn", "k": 4}), tmp_path / "m.pt")
    out = tmp_path / "att"
    argv = ["--ckpt", tmp_path / "m.pt", "--image0", list_images(embedded_dir)[0], "--layers", "1", "--max-keypoints", 300, "--out", out]
    code, _, err = attention_cli(argv, capsys)
    assert code == 0, err
    first = (out / "attention.json").read_bytes()
    code, stdout, err = attention_cli(argv, capsys)
    assert code == 2 and stdout == ""
    assert one_line_error(err) == f"error: --out {out}: layer1.png exists; choose another folder, or pass --overwrite to replace it"
    assert (out / "attention.json").read_bytes() == first
    image = shutil.copy(list_images(embedded_dir)[0], out / "layer0.png")  # an input where a drawing would go
    code, _, err = attention_cli(argv[:-2] + ["--layers", "0,1", "--image0", image, "--out", out, "--overwrite"], capsys)
    assert code == 2 and one_line_error(err) == f"error: --out {out}: layer0.png is one of the inputs ({image}); choose another folder"
    code, _, err = attention_cli(argv + ["--overwrite"], capsys)
    assert code == 0, err
