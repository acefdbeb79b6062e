"""The attention conv (dense = sparse), the assignment heads, and the whole model's invariances."""
import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pygmatch.data.pair_data import make_pair_data
from pygmatch.data.features import extract
from pygmatch.graphs.registry import graph_params
from pygmatch.graphs import CompleteGraph, DescriptorKNNCross, KNNGraph, MultiScaleGraph, complete_edges
from pygmatch.nn import DenseBlocks, DualSoftmaxHead, FourierPositions, GraphAttention, GraphMatcher, MatcherConfig, log_sinkhorn
from pygmatch.nn.assignment import extract_matches

torch.manual_seed(0)


def block_complete(sizes_src, sizes_dst):
    """Complete bipartite edges inside each pair of a batch, plus batch vectors."""
    edges, s0, d0 = [], 0, 0
    for ns, nd in zip(sizes_src, sizes_dst):
        src, dst = torch.arange(ns).repeat(nd) + s0, torch.arange(nd).repeat_interleave(ns) + d0
        edges.append(torch.stack([src, dst]))
        s0, d0 = s0 + ns, d0 + nd
    batch = lambda sizes: torch.cat([torch.full((n,), b) for b, n in enumerate(sizes)])  # noqa: E731
    return torch.cat(edges, 1), batch(sizes_src), batch(sizes_dst)


def edge_weights(edge_index, alpha):
    return {(int(s), int(d)): alpha[k] for k, (s, d) in enumerate(edge_index.t())}


@pytest.mark.parametrize("bipartite", [False, True])
def test_dense_equals_sparse_on_complete_graphs(bipartite):
    conv = GraphAttention(32, heads=4)
    sizes_src = [7, 12, 1]
    sizes_dst = [5, 9, 3] if bipartite else sizes_src
    x_src = torch.randn(sum(sizes_src), 32)
    x_dst = torch.randn(sum(sizes_dst), 32) if bipartite else x_src
    rope = FourierPositions(8)(torch.rand(sum(sizes_src), 2))
    rope_dst = FourierPositions(8)(torch.rand(sum(sizes_dst), 2)) if bipartite else rope
    edges, b_src, b_dst = block_complete(sizes_src, sizes_dst)
    sparse, (e_s, a_s) = conv((x_src, x_dst), edges, rope=(rope, rope_dst), return_attention=True)
    dense, (e_d, a_d) = conv((x_src, x_dst), rope=(rope, rope_dst), dense=DenseBlocks(b_src, b_dst, 3), return_attention=True)
    fast = conv((x_src, x_dst), rope=(rope, rope_dst), dense=DenseBlocks(b_src, b_dst, 3))
    torch.testing.assert_close(dense, sparse, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, sparse, atol=1e-5, rtol=1e-5)
    ws, wd = edge_weights(e_s, a_s), edge_weights(e_d, a_d)
    assert ws.keys() == wd.keys() and len(ws) == edges.size(1)
    for key in ws:
        torch.testing.assert_close(wd[key], ws[key], atol=1e-6, rtol=1e-5)


def test_dense_exclusion_equals_sparse_complement():
    conv = GraphAttention(16, heads=2)
    x = torch.randn(10, 16)
    knn = KNNGraph(3)(_points(10)).edge_index
    exclude = torch.zeros(1, 10, 10, dtype=torch.bool)
    exclude[0, knn[1], knn[0]] = True
    full = complete_edges(10)
    rest = full[:, ~exclude[0, full[1], full[0]]]
    torch.testing.assert_close(conv(x, dense=DenseBlocks(torch.zeros(10, dtype=torch.long), torch.zeros(10, dtype=torch.long), 1, exclude)),
                               conv(x, rest), atol=1e-5, rtol=1e-5)


def test_attention_rows_sum_to_one_and_isolated_nodes_get_nothing():
    conv = GraphAttention(16, heads=2)
    x = torch.randn(6, 16)
    edges = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]])  # nodes 2..5 receive nothing
    out, (e, alpha) = conv(x, edges, return_attention=True)
    torch.testing.assert_close(alpha[:3].sum(0), torch.ones(2))
    torch.testing.assert_close(out[2:], conv.out.bias.expand(4, -1))


def _points(n, seed=0):
    from torch_geometric.data import Data
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 2, generator=g) * 100
    return Data(pos=pos, pos_norm=pos / 100, x=torch.randn(n, 8, generator=g), image_size=torch.tensor([[100.0, 100.0]]), num_nodes=n)


def test_sinkhorn_marginals_with_padding():
    scores = torch.randn(2, 6, 5)
    mask0 = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    mask1 = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    P = log_sinkhorn(scores, torch.tensor(0.5), mask0, mask1, iters=200).exp()
    for b, (n, m) in enumerate([(3, 5), (6, 2)]):
        rows, cols = P[b, :n, : m].sum(1) + P[b, :n, -1], P[b, :n, :m].sum(0) + P[b, -1, :m]
        torch.testing.assert_close(rows, torch.ones(n), atol=1e-4, rtol=0)  # each keypoint: mass 1
        torch.testing.assert_close(cols, torch.ones(m), atol=1e-4, rtol=0)
        # SuperGlue's marginals: the dustbin row carries m, the dustbin column n
        torch.testing.assert_close(P[b, -1, :m].sum() + P[b, -1, -1], torch.tensor(float(m)), atol=1e-3, rtol=0)
        torch.testing.assert_close(P[b, :n, -1].sum() + P[b, -1, -1], torch.tensor(float(n)), atol=1e-3, rtol=0)
        assert P[b, n:-1].sum() < 1e-6 and P[b, :, m:-1].sum() < 1e-6  # padding gets nothing
    # the same pair alone gives the same assignment: no padding leaks
    alone = log_sinkhorn(scores[:1, :3], torch.tensor(0.5), mask0[:1, :3], mask1[:1], iters=200).exp()
    torch.testing.assert_close(alone[0, :3, :5], P[0, :3, :5], atol=1e-5, rtol=1e-4)


def test_sinkhorn_is_stable_under_half_precision_autocast():
    from pygmatch.nn import SinkhornHead
    head = SinkhornHead(16, iters=30, prior=False)
    d0, d1 = torch.randn(1, 40, 16) * 30, torch.randn(1, 50, 16) * 30  # large scores
    with torch.autocast("cpu", dtype=torch.bfloat16):
        la = head(d0, d1, torch.ones(1, 40, dtype=torch.bool), torch.ones(1, 50, dtype=torch.bool))
    assert la.dtype == torch.float32 and torch.isfinite(la).all()


def test_dual_softmax_does_not_leak_padding():
    head = DualSoftmaxHead(8, prior=False)
    d0, d1 = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    m0 = torch.tensor([[1, 1, 1, 0, 0], [1] * 5], dtype=torch.bool)
    m1 = torch.tensor([[1] * 4, [1, 1, 0, 0]], dtype=torch.bool)
    la = head(d0, d1, m0, m1)
    # each pair padded into the batch (pair 0: rows 3..4 padding, pair 1: columns 2..3) gives what it
    # gives alone: the real block, the dustbin column and the dustbin row
    for b, (n, m) in enumerate([(3, 4), (5, 2)]):
        alone = head(d0[b:b + 1, :n], d1[b:b + 1, :m], m0[b:b + 1, :n], m1[b:b + 1, :m])
        assert alone.shape == (1, n + 1, m + 1)
        torch.testing.assert_close(la[b, :n, :m], alone[0, :n, :m], atol=1e-5, rtol=0)
        torch.testing.assert_close(la[b, :n, -1], alone[0, :n, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(la[b, -1, :m], alone[0, -1, :m], atol=1e-5, rtol=0)
        assert la[b, n:-1].exp().sum() == 0 and la[b, :, m:-1].exp().sum() == 0  # padding gets nothing


def test_extract_matches_is_mutual_and_thresholded():
    la = torch.full((1, 4, 4), -10.0)
    la[0, 0, 0], la[0, 1, 0], la[0, 2, 2] = -0.1, -0.5, -3.0  # 1 -> 0 is not mutual; 2 -> 2 is weak (p=0.05)
    m0, m1, s0 = extract_matches(la, torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool), threshold=0.2)
    assert m0.tolist() == [[0, -1, -1]] and m1.tolist() == [[0, -1, -1]]
    assert s0[0, 0] == pytest.approx(np.exp(-0.1), rel=1e-5)


# ---------------------------------------------------------------- the whole model

TINY = dict(dim=32, layers=2, heads=2)


@pytest.fixture(scope="module")
def keypoints(image):
    kp = extract(image, "sift", 250)
    _, first = np.unique(kp.xy, axis=0, return_index=True)  # no duplicate positions: neighbours are unambiguous
    return kp.subset(np.sort(first))


def pair(kp, n0, n1, graph, cross=None):
    return make_pair_data(kp.subset(np.arange(n0)), kp.subset(np.arange(n1)), (640, 480), graph, cross, np.eye(3))


@pytest.mark.parametrize("graph", [CompleteGraph(), KNNGraph(5)], ids=repr)
@pytest.mark.parametrize("assignment", ["sinkhorn", "dual-softmax"])
def test_permuting_keypoints_permutes_the_output(keypoints, graph, assignment):
    model = GraphMatcher(MatcherConfig(**TINY, assignment=assignment)).eval()
    p = pair(keypoints, 60, 50, graph)
    perm = torch.randperm(60)
    kp_perm = keypoints.subset(perm.numpy())
    q = make_pair_data(kp_perm, keypoints.subset(np.arange(50)), (640, 480), graph, None, np.eye(3))
    with torch.no_grad():
        a, b = model(p).log_assignment[0], model(q).log_assignment[0]
    torch.testing.assert_close(b[:-1], a[:-1][perm], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("graph, cross", [(CompleteGraph(), None), (KNNGraph(6), DescriptorKNNCross(4)),
                                          (MultiScaleGraph((3, 6, "all"), "disjoint"), None)], ids=["complete", "knn", "multiscale"])
def test_batch_equals_per_pair(keypoints, graph, cross):
    model = GraphMatcher(MatcherConfig(**TINY, graph=graph_params(graph))).eval()
    pairs = [pair(keypoints, 70, 40, graph, cross), pair(keypoints, 20, 90, graph, cross), pair(keypoints, 3, 5, graph, cross)]
    batch = next(iter(DataLoader(pairs, batch_size=3, follow_batch=["x_0", "x_1"])))
    with torch.no_grad():
        out = model(batch)
        for b, p in enumerate(pairs):
            one = model(p)
            n, m = p.x_0.size(0), p.x_1.size(0)
            torch.testing.assert_close(out.log_assignment[b, :n, :m], one.log_assignment[0, :n, :m], atol=1e-4, rtol=1e-4)
            assert torch.equal(out.matches0[b, :n], one.matches0[0])


def test_gradients_reach_every_parameter(keypoints):
    from pygmatch.training.module import MatcherModule
    cfg = MatcherConfig(**TINY, graph={"name": "multiscale", "ks": [4, "all"]}, deep_supervision=True, assignment="dual-softmax")
    module = MatcherModule(cfg.to_dict(), ortho_weight=0.1)
    p = pair(keypoints, 60, 60, MultiScaleGraph((4, "all"), "nested"))
    batch = next(iter(DataLoader([p, p], batch_size=2, follow_batch=["x_0", "x_1"])))
    loss = module.losses(batch, module.model(batch))["loss"]
    loss.backward()
    missing = [n for n, w in module.model.named_parameters() if w.grad is None or not w.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("n0, n1", [(0, 10), (10, 0), (0, 0), (1, 1)])
def test_degenerate_sizes(keypoints, n0, n1):
    for assignment in ("sinkhorn", "dual-softmax"):
        model = GraphMatcher(MatcherConfig(**TINY, assignment=assignment)).eval()
        with torch.no_grad():
            out = model(pair(keypoints, n0, n1, KNNGraph(4)))
        assert out.matches0.shape == (1, n0) and out.matches1.shape == (1, n1)
        assert out.log_assignment.shape == (1, n0 + 1, n1 + 1) and torch.isfinite(out.log_assignment).all()
        if n0 == 0 or n1 == 0:  # nothing to match with: every keypoint unmatched
            assert (out.matches0 == -1).all() and (out.matches1 == -1).all()
            if assignment == "sinkhorn":  # ... and its whole mass in the dustbin
                P = out.log_assignment[0].exp()
                torch.testing.assert_close(P[:n0, -1], torch.ones(n0), atol=1e-4, rtol=0)
                torch.testing.assert_close(P[-1, :n1], torch.ones(n1), atol=1e-4, rtol=0)
        else:  # one keypoint against its identical copy: the (untrained) descriptor prior matches them
            assert out.matches0.tolist() == [[0]] and out.matches1.tolist() == [[0]]


@pytest.mark.parametrize("conv", ["gat", "gatv2", "transformer"])
def test_pyg_convs(keypoints, conv):
    model = GraphMatcher(MatcherConfig(**TINY, conv=conv, positional="absolute")).eval()
    with torch.no_grad():
        out = model(pair(keypoints, 30, 25, KNNGraph(4)))
    assert torch.isfinite(out.log_assignment).all()


def test_early_exit_and_pruning_change_the_computation(keypoints):
    cfg = MatcherConfig(dim=32, layers=4, heads=2, assignment="dual-softmax")
    model = GraphMatcher(cfg).eval()
    p = pair(keypoints, 50, 50, CompleteGraph())
    with torch.no_grad():
        full = model(p)
        cfg.early_exit, cfg.exit_confidence, cfg.exit_ratio = True, 0.0, 0.0  # everyone is "confident"
        early = model(p)
        cfg.early_exit, cfg.pruning, cfg.prune_matchability = False, True, 1.1  # everyone is "unmatchable"
        pruned = model(p)
    assert full.stop_layer == 4 and early.stop_layer == 1
    assert not torch.allclose(full.log_assignment, early.log_assignment)
    assert pruned.pruned == (50, 50) and (pruned.matches0 == -1).all()
