"""The candidate graph network: its motion fits are exact, its candidates are the descriptors'
nearest neighbours, batching pairs changes nothing, it learns on real image pairs in a few steps,
and the matching stage saves, loads and returns the stage's types."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.data.features import extract
from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.data.scenes import EMBEDDED_SCENES
from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph, descriptor_candidates, nearest_two
from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet, candidate_loss, sparse_dual_softmax, weighted_affine_fit
from pygmatch.training.module import pair_results

SIZE = (640, 480)


@pytest.fixture(scope="module")
def graphs():
    """Candidate graphs of four real homography pairs (embedded images, difficulty 1 and 3), with
    every candidate's reprojection error."""
    out = []
    cfg = CandidateGraphConfig(layers=2, dim=32)
    for k, file in enumerate(list_images(EMBEDDED_IMAGES)[:4]):
        im0, im1, H = make_pair(read_gray(file), pair_rng(3, k), 1.0 if k % 2 == 0 else 3.0)
        kp0, kp1 = extract(im0, max_keypoints=512), extract(im1, max_keypoints=512)
        cand, data = candidate_graph(kp0, kp1, SIZE, SIZE, cfg)
        data.error = torch.from_numpy(np.linalg.norm(warp_points(kp0.xy[cand[:, 0]], H) - kp1.xy[cand[:, 1]], axis=1).astype(np.float32))
        out.append((kp0, kp1, H, cand, data))
    return out


def test_affine_fit_is_exact_and_measures_the_miss():
    rng = np.random.default_rng(0)
    pa = torch.from_numpy(rng.uniform(0, 300, (30, 2))).float()
    A = torch.tensor([[1.2, 0.3], [-0.2, 0.9]])
    pb = pa @ A.T + torch.tensor([5.0, -7.0])
    pb[0] += torch.tensor([3.0, 4.0])  # node 0 is 5 px off the motion
    src = torch.arange(1, 30).repeat(2)
    dst = torch.cat([torch.zeros(29, dtype=torch.long), torch.ones(29, dtype=torch.long)])
    keep = src != dst
    src, dst = src[keep], dst[keep]
    w = torch.ones(len(src))
    fit = weighted_affine_fit(pa[src] - pa[dst], pb[src] - pb[dst], w, dst, 2)
    assert abs(fit[0, 2].norm().item() - 5.0) < 0.05  # the neighbours' motion misses node 0 by 5 px
    assert fit[1, 2].norm().item() < 0.05  # node 1 is on it
    np.testing.assert_allclose(fit[1, :2].T.numpy() / 50, A.numpy(), atol=1e-3)


def test_candidates_are_the_descriptor_neighbours(graphs):
    kp0, kp1, _, cand, _ = graphs[0]
    nn, _ = nearest_neighbor_match(kp0.descriptors, kp1.descriptors)
    np.testing.assert_array_equal(cand, nn)
    top2, feats = descriptor_candidates(kp0.descriptors, kp1.descriptors, "top2")
    assert len(top2) > 2 * len(nn) and set(map(tuple, nn)) <= set(map(tuple, top2))
    assert feats[:, 3].sum() == len(nn)  # the mutual flag marks exactly the mutual nearest neighbours
    mutual2, feats = descriptor_candidates(kp0.descriptors, kp1.descriptors, "mutual2")
    assert set(map(tuple, nn)) < set(map(tuple, mutual2)) < set(map(tuple, top2)) and feats[:, 3].sum() == len(nn)
    with pytest.raises(PygmatchError):
        descriptor_candidates(kp0.descriptors, kp1.descriptors, "top9")


def whole_matrix_candidates(d0, d1, kind):
    """The candidates as they were computed before ``nearest_two``: the whole similarity matrix and
    ``topk`` along both of its dimensions (the reference of the blockwise search)."""
    n, m = len(d0), len(d1)
    sim = torch.from_numpy(d0) @ torch.from_numpy(d1).T
    (best0, order0), (best1, order1) = sim.topk(2, dim=1), sim.T.contiguous().topk(2, dim=1)
    two0, two1 = np.maximum(2.0 - 2.0 * best0.numpy(), 0.0), np.maximum(2.0 - 2.0 * best1.numpy(), 0.0)
    order0, order1 = order0.numpy(), order1.numpy()
    nn0, nn1 = order0[:, 0], order1[:, 0]
    if kind == "mutual":
        i = np.nonzero(nn1[nn0] == np.arange(n))[0]
        cand = np.stack([i, nn0[i]], 1)
    elif kind == "mutual2":  # each among the other's two nearest, image 0's order, its nearest first
        cand = np.array([(i, j) for i in range(n) for j in order0[i] if i in order1[j]], np.int64).reshape(-1, 2)
    else:
        cand = np.unique(np.concatenate([np.stack([np.repeat(np.arange(n), 2), order0.reshape(-1)], 1),
                                         np.stack([order1.reshape(-1), np.repeat(np.arange(m), 2)], 1)]), axis=0)
    i, j = cand[:, 0], cand[:, 1]
    feats = np.stack([np.maximum(2.0 - 2.0 * sim.numpy()[i, j], 0.0), np.sqrt(two0[i, 0] / np.maximum(two0[i, 1], 1e-12)),
                      np.sqrt(two1[j, 0] / np.maximum(two1[j, 1], 1e-12)), (nn0[i] == j) & (nn1[j] == i)], 1)
    return cand, feats.astype(np.float32)


@pytest.fixture(scope="module")
def photo_descriptors():
    """rootSIFT descriptors of two overlapping photographs (the embedded pose scene), 3000
    keypoints at most each (not a multiple of the search's blocks)."""
    from pygmatch.pipeline import Extractor

    extractor = Extractor("sift", 3000)
    files = sorted((EMBEDDED_SCENES / "lund_door" / "images").iterdir())[:2]
    return [extractor(f).keypoints.descriptors for f in files]


def test_blockwise_nearest_two_is_the_whole_similarity_topk(photo_descriptors):
    d0, d1 = photo_descriptors
    sim = torch.from_numpy(d0) @ torch.from_numpy(d1).T
    best0, order0, best1 = nearest_two(d0, d1)
    rows, cols = sim.topk(2, dim=1), sim.topk(2, dim=0)
    assert torch.equal(best0, rows.values) and torch.equal(best1, cols.values.T)  # bit for bit
    assert torch.equal(sim.gather(1, order0), best0)  # the indices point at those values ...
    distinct = (sim.topk(3, dim=1).values.diff(dim=1) != 0).all(1)
    assert distinct.sum() > 0.99 * len(d0) and torch.equal(order0[distinct], rows.indices[distinct])  # ... topk's, ties aside
    best1_swapped, order1, best0_swapped = nearest_two(d1, d0)
    assert torch.equal(best1_swapped, best1) and torch.equal(best0_swapped, best0)  # the same similarities from either side
    assert torch.equal(sim.T.gather(1, order1), best1)


@pytest.mark.parametrize("n,m", [(None, None), (70, 130), (300, 64), (129, 1000), (1000, 257), (2, 3), (3000, 5)])
@pytest.mark.parametrize("kind", ["mutual", "mutual2", "top2"])
def test_candidates_equal_the_whole_matrix_search(photo_descriptors, kind, n, m):
    """On real descriptors, whole and cut to sizes that exercise the padding and the small-row
    path. With a handful of keypoints on one side torch.mm's whole product takes a small-matrix
    kernel: the same candidates, the features to the last bit or so."""
    d0, d1 = photo_descriptors[0][:n], photo_descriptors[1][:m]
    cand, feats = descriptor_candidates(d0, d1, kind)
    ref_cand, ref_feats = whole_matrix_candidates(d0, d1, kind)
    assert len(cand) >= (min(len(d0), len(d1)) // 4 if n is None else 1)
    np.testing.assert_array_equal(cand, ref_cand)
    if min(len(d0), len(d1)) > 8:
        np.testing.assert_array_equal(feats, ref_feats)
    else:
        np.testing.assert_allclose(feats, ref_feats, rtol=1e-5, atol=1e-6)


def test_dual_softmax_sums_to_at_most_one_per_keypoint():
    z = torch.tensor([2.0, 1.0, 0.5, -1.0])
    g0, g1 = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2])
    p = torch.exp(sparse_dual_softmax(z, g0, g1, torch.tensor(0.0)))
    for g in (g0, g1):
        for k in g.unique():
            assert p[g == k].sum() < 1
    assert p[0] > p[1]


def test_batching_pairs_changes_nothing(graphs):
    torch.manual_seed(0)
    model = CandidateGraphNet(CandidateGraphConfig(layers=2, dim=32)).eval()
    alone = [model(g[4]).log_assign for g in graphs[:2]]
    batch = Batch.from_data_list([g[4] for g in graphs[:2]])
    together = model(batch).log_assign
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=1e-4)


def test_in_place_attention_message_is_the_formula_and_its_gradients(graphs):
    """``CandidateAttention.message`` sums its (E, dim) terms in place: the same values, bit for
    bit, and the same gradients as the formula written out of place."""
    from torch_geometric.utils import softmax

    from pygmatch.nn.candidate_graph import EDGE_FEATURES, CandidateAttention

    torch.manual_seed(0)
    att = CandidateAttention(32, 2, EDGE_FEATURES)
    edge_index = graphs[0][4].edge_index0
    n, e = graphs[0][4].num_nodes, edge_index.size(1)
    h, edge_attr = torch.randn(n, 32), torch.randn(e, EDGE_FEATURES)
    src, dst = edge_index

    def run(message):
        inputs = [t.clone().requires_grad_() for t in (h, edge_attr)]
        q, k, v = att.w_t(inputs[0]), att.w_s(inputs[0]), att.v_h(inputs[0])
        out = message(q[dst], k[src], v[src], inputs[1], dst, None, n)
        out.pow(2).sum().backward()
        return out.detach(), [t.grad for t in inputs], [p.grad.clone() for p in att.parameters() if p.grad is not None]

    def formula(q_i, k_j, v_j, edge_attr, index, ptr, size_i):
        x = torch.nn.functional.leaky_relu(q_i + k_j + att.w_e(edge_attr), 0.2).view(-1, 2, 16)
        alpha = softmax((x * att.att).sum(-1), index, ptr, size_i)
        return alpha[..., None] * (v_j + att.v_e(edge_attr)).view(-1, 2, 16)

    out, grads, params = run(att.message)
    att.zero_grad()
    ref_out, ref_grads, ref_params = run(formula)
    assert torch.equal(out, ref_out)
    for a, b in zip(grads + params, ref_grads + ref_params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def kept_precision(model, batch) -> float:
    """Share within 1 px of the candidates the matching stage keeps (``keep_probable``)."""
    with torch.no_grad():
        rows = pair_results(batch, model.eval()(batch).score, model.cfg)
    return sum(r["correct@1"] for r in rows) / max(sum(r["kept"] for r in rows), 1)


def test_it_learns_on_real_pairs_and_the_stage_round_trips(graphs, tmp_path):
    cfg = CandidateGraphConfig(layers=2, dim=32)
    batch = Batch.from_data_list([g[4] for g in graphs])
    batch.H = torch.stack([torch.from_numpy(g[2]) for g in graphs])
    batch.image_size = torch.tensor([SIZE] * len(graphs), dtype=torch.float32)
    torch.manual_seed(0)
    model = CandidateGraphNet(cfg)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    before = candidate_loss(model(batch), batch.error, cfg).item()
    for _ in range(80):
        loss = candidate_loss(model.train()(batch), batch.error, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert candidate_loss(model.eval()(batch), batch.error, cfg).item() < 0.6 * before
    # kept candidates: more precise than all the mutual nearest neighbours
    assert kept_precision(model, batch) > (batch.error < 1).float().mean().item() + 0.02
    stage = CandidateGraphMatching(model)
    kp0, kp1, H, _, _ = graphs[0]
    matches, scores = stage.match(kp0, kp1, SIZE, SIZE)
    assert matches.dtype == np.int64 and matches.shape[1] == 2 and scores.dtype == np.float32 and len(matches) >= 20
    stage.save(tmp_path / "cg.pt")
    again = CandidateGraphMatching.load(tmp_path / "cg.pt", threshold=0.9)
    assert again.cfg.threshold == 0.9
    m2, _ = CandidateGraphMatching.load(tmp_path / "cg.pt").match(kp0, kp1, SIZE, SIZE)
    np.testing.assert_array_equal(matches, m2)
    with pytest.raises(PygmatchError):
        CandidateGraphMatching.load(tmp_path / "missing.pt")


def test_messages_off_uses_no_attention(graphs):
    cfg = CandidateGraphConfig(layers=1, dim=32, messages=False)
    model = CandidateGraphNet(cfg).eval()
    out = model(graphs[0][4])
    loss = candidate_loss(out, graphs[0][4].error, cfg)
    loss.backward()
    assert model.layers[0].att0[0].w_t.weight.grad is None  # the attention takes no part


@pytest.mark.parametrize("name, params", [("knn", {"k": 6}), ("radius", {"r": 0.05, "max_neighbors": 16}), ("mst", {}),
                                          ("partition", {"cells": (8, 6)}), ("multiscale", {"ks": (4, 8, "all"), "mode": "disjoint"})])
def test_every_intra_graph_swaps_in(graphs, name, params):
    """The candidates' graph is any pygmatch.graphs transform, named in the config; a multi-scale
    one gives each scale its own attention branch, and its disjoint rings with "all" cover every
    other candidate exactly once."""
    from pygmatch.graphs.registry import graph_params, make_graph

    kp0, kp1 = graphs[1][0], graphs[1][1]
    graph = make_graph(name, **params)
    cfg = CandidateGraphConfig(layers=1, dim=32, graph=graph_params(graph), ortho_weight=0.1)
    cand, data = candidate_graph(kp0, kp1, SIZE, SIZE, cfg)
    model = CandidateGraphNet(cfg)
    assert model.scales == (3 if name == "multiscale" else 1)
    assert len(model.layers[0].att0) == model.scales
    for edges, scale in ((data.edge_index0, data.edge_scale0), (data.edge_index1, data.edge_scale1)):
        assert edges.size(1) == scale.size(0) and int(scale.max()) == model.scales - 1
        assert bool((edges[0] != edges[1]).all())  # no self-loops
        if name == "multiscale":
            n = data.num_nodes
            keys = edges[0] * n + edges[1]
            assert keys.unique().numel() == keys.numel() == n * (n - 1)  # rings + the rest: complete, no edge twice
    data.error = graphs[1][4].error if name == "knn" else torch.full((data.num_nodes,), 5.0)
    out = model(data)
    assert len(out.branches) == (1 if name == "multiscale" else 0)
    loss = candidate_loss(out, data.error, cfg)
    plain = candidate_loss(out, data.error, CandidateGraphConfig(layers=1, dim=32, graph=cfg.graph))
    assert torch.isfinite(loss) and (loss > plain if name == "multiscale" else loss == plain)
    loss.backward()
    assert all(p.grad is not None for a in model.layers[0].att0 for p in a.parameters())


def test_descriptor_graph_is_refused():
    with pytest.raises(PygmatchError, match="positions"):
        CandidateGraphNet(CandidateGraphConfig(graph={"name": "descriptor-knn", "k": 8}))


def test_unrelated_images_are_not_padded(graphs):
    """Two images that do not overlap: fewer than ``pad_from`` candidates pass, so none are added
    (``pad_from=0`` pads them up to ``min_keep``)."""
    stage = CandidateGraphMatching.load("default")
    im0, im1 = (read_gray(f) for f in list_images(EMBEDDED_IMAGES)[:2])
    kp0, kp1 = extract(im0, max_keypoints=1024), extract(im1, max_keypoints=1024)
    size0, size1 = im0.shape[::-1], im1.shape[::-1]
    matches, _ = stage.match(kp0, kp1, size0, size1)
    assert len(matches) < stage.cfg.pad_from
    padded, _ = CandidateGraphMatching.load("default", pad_from=0).match(kp0, kp1, size0, size1)
    assert len(padded) == stage.cfg.min_keep


def test_train_run_swaps_the_graph_and_export_keeps_it(tmp_path, capsys):
    """``python -m train.run --graph multiscale ... --ortho-weight 0.1`` from a real (small) bank: a
    run whose model file (``train.export``) records the graph and loads as a two-branch network."""
    from .conftest import run_command
    from pygmatch.commands import train_export, train_run
    from pygmatch.data.bank import BankConfig, build_bank

    root = build_bank(tmp_path / "bank", BankConfig((str(EMBEDDED_IMAGES),), max_keypoints=400, shard_pairs=3, seed=5), pairs=6,
                      workers=1, progress=False).root
    run = tmp_path / "run"
    argv = ["--bank", root, "--out", run, "--val-pairs", 2, "--max-steps", 4, "--batch-size", 2, "--val-every", 2, "--dim", 16,
            "--layers", 1, "--graph", "multiscale", "--ks", "4,8", "--rings", "disjoint", "--ortho-weight", 0.1, "--no-progress"]
    code, stdout, err = run_command(train_run.main, argv, capsys)
    assert code == 0, err[-2000:]
    code, _, err = run_command(train_export.main, [run, "--out", tmp_path / "cg.pt"], capsys)
    assert code == 0, err
    stage = CandidateGraphMatching.load(tmp_path / "cg.pt")
    assert stage.model.scales == 2 and stage.cfg.ortho_weight == 0.1 and stage.cfg.pad_from == 10
    assert stage.cfg.graph == {"name": "multiscale", "ks": [4, 8], "mode": "disjoint"}
    record = torch.load(tmp_path / "cg.pt", weights_only=True)["training"]
    assert record["checkpoint"] == "best.ckpt" and record["step"] in (2, 4) and len(record["curve"]) == 2
    assert all(np.isfinite(r["val/loss"]) for r in record["curve"])


def test_a_version1_file_loads_as_the_same_network(graphs, tmp_path):
    """Files of the first layout (graph name + k, one attention module per image) still load."""
    import re

    stage = CandidateGraphMatching.load("default")
    stage.save(tmp_path / "v2.pt")
    ckpt = torch.load(tmp_path / "v2.pt", weights_only=True)
    config = {k: v for k, v in ckpt["config"].items() if k not in ("graph", "ortho_weight", "pad_from")}
    config.update(graph="knn", k=ckpt["config"]["graph"]["k"])
    state = {re.sub(r"\.att([01])\.0\.", r".att\1.", n): v for n, v in ckpt["state_dict"].items()}
    torch.save({**ckpt, "version": 1, "config": config, "state_dict": state}, tmp_path / "v1.pt")
    old = CandidateGraphMatching.load(tmp_path / "v1.pt")
    kp0, kp1 = graphs[0][0], graphs[0][1]
    np.testing.assert_array_equal(old.match(kp0, kp1, SIZE, SIZE)[0], stage.match(kp0, kp1, SIZE, SIZE)[0])
    torch.save({**ckpt, "version": 7}, tmp_path / "v7.pt")
    with pytest.raises(PygmatchError, match="version 7"):
        CandidateGraphMatching.load(tmp_path / "v7.pt")
