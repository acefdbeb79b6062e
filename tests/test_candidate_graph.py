"""The candidate graph network: its motion fits are exact, its candidates are the descriptors'
nearest neighbours, batching pairs changes nothing, it learns on real image pairs in a few steps,
and the matching stage saves, loads and returns the stage's types."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from pygmatch.data import EMBEDDED_IMAGES, list_images, make_pair, pair_rng, read_gray
from pygmatch.data.features import Keypoints, extract
from pygmatch.data.geometry import warp_points
from pygmatch.errors import PygmatchError
from pygmatch.data.scenes import EMBEDDED_SCENES
import pygmatch.matching.similarity as similarity
from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph, descriptor_candidates
from pygmatch.matching.similarity import nearest_two
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


@pytest.fixture(scope="module")
def sfm_descriptors():
    """rootSIFT descriptors of two overlapping photographs of the embedded collection (sfm-mini),
    at 4096 keypoints at most as ``pygmatch sfm`` extracts them: 3290 and 4096."""
    from pygmatch.pipeline import Extractor

    extractor = Extractor("sift", 4096)
    files = sorted((EMBEDDED_IMAGES.parent / "sfm-mini").glob("*.jpg"))[:2]
    return [extractor(f).keypoints.descriptors for f in files]


def float32_only(monkeypatch):
    monkeypatch.setattr(similarity, "INT8_MIN_KEYPOINTS", 1 << 40)


def int8_always(monkeypatch):
    monkeypatch.setattr(similarity, "INT8_MIN_KEYPOINTS", 0)
    monkeypatch.setattr(similarity, "INT8_MAX_RESCORED", float("inf"))


def assert_whole_matrix_topk(d0, d1, result, exact=True):
    """``nearest_two``'s ``result`` against the whole similarity matrix: its values (bit for bit
    when ``exact``, else to the last bit or so), indices that point at them, and ``topk``'s indices
    where a row's three largest differ. With a single keypoint on a side, only the largest."""
    best0, order0, best1 = result
    sim = torch.from_numpy(d0) @ torch.from_numpy(d1).T
    k0, k1 = min(2, sim.size(1)), min(2, sim.size(0))
    rows, cols = sim.topk(k0, dim=1), sim.topk(k1, dim=0)
    if exact:
        assert torch.equal(best0[:, :k0], rows.values) and torch.equal(best1[:, :k1], cols.values.T)
        assert torch.equal(sim.gather(1, order0[:, :k0]), best0[:, :k0])
    else:
        torch.testing.assert_close(best0[:, :k0], rows.values, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(best1[:, :k1], cols.values.T, rtol=1e-6, atol=1e-6)
    if sim.size(1) > 2:
        distinct = (sim.topk(3, dim=1).values.diff(dim=1) != 0).all(1)
        assert torch.equal(order0[distinct], rows.indices[distinct])


def test_int8_first_pass_gives_the_float32_values_on_real_pairs(sfm_descriptors, monkeypatch):
    """At 4096 keypoints the int8 pass runs (``rescore`` is called) and leaves about a tenth of
    the similarities; the result is that of the whole float32 matrix, bit for bit, both ways."""
    d0, d1 = sfm_descriptors
    calls = []
    rescore = similarity.rescore
    monkeypatch.setattr(similarity, "rescore", lambda *args, **kw: calls.append(args[2].float().mean().item()) or rescore(*args, **kw))
    for x, y in ((d0, d1), (d1, d0), (d1, d1)):
        calls.clear()
        result = nearest_two(x, y)
        assert len(calls) == 2 and sum(calls) < 0.3
        assert_whole_matrix_topk(x, y, result)
    monkeypatch.setattr(similarity, "rescore", rescore)
    float32_only(monkeypatch)
    for got, want in zip(result, nearest_two(d1, d1)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("n,m", [(1, 2), (2, 1), (2, 2), (8, 9), (9, 8), (63, 65), (65, 63), (64, 1000), (1000, 129), (200, 3000), (2500, 4096)])
def test_int8_path_at_every_size(sfm_descriptors, monkeypatch, n, m):
    """The int8 path, forced at any size: the float32 path's values bit for bit (hence the whole
    matrix's but for its small-matrix kernel, 8 keypoints or fewer on a side) and its indices."""
    d0, d1 = sfm_descriptors[0][:n], sfm_descriptors[1][-m:]
    float32_only(monkeypatch)
    want = nearest_two(d0, d1)
    int8_always(monkeypatch)
    got = nearest_two(d0, d1)
    assert torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])
    finite = torch.isfinite(want[0][:, 1])
    assert torch.equal(got[1][:, 0], want[1][:, 0]) and torch.equal(got[1][finite, 1], want[1][finite, 1])
    assert_whole_matrix_topk(d0, d1, got, exact=min(n, m) > 8)


def perturbed(d, scale, seed):
    x = d + scale * np.random.default_rng(seed).standard_normal(d.shape).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("case", ["duplicates", "near ties", "second and third tied", "signed", "all alike"])
def test_int8_path_on_adversarial_sets(sfm_descriptors, monkeypatch, case):
    """Exact ties (every descriptor twice), near ties (copies a few float32 steps apart) between
    the first and the second or the second and the third, signed descriptors (an int8 grid around
    0) and nearly identical descriptors (whose tiles are all kept: the whole product in float32, or
    the int8 path forced): the float32 path's values bit for bit, indices that point at them."""
    d, other = sfm_descriptors[0][:2100], sfm_descriptors[1][:2200]
    if case == "duplicates":
        d0, d1 = d, np.concatenate([d[:1100], d[:1100]])[np.random.default_rng(0).permutation(2200)]
    elif case == "near ties":
        d0, d1 = d, np.concatenate([d[:1100], perturbed(d[:1100], 1e-7, 1)])
    elif case == "second and third tied":
        d0, d1 = d, np.concatenate([d[:700], perturbed(d[:700], 1e-3, 2), perturbed(d[:700], 1e-3, 2) * np.float32(1 - 2 ** -23)])
    elif case == "signed":
        d0, d1 = perturbed(d - 0.08, 0.0, 0), perturbed(other - 0.08, 0.0, 0)
    else:
        d0, d1 = perturbed(np.repeat(d[:1], 2100, 0), 1e-3, 3), perturbed(np.repeat(d[:1], 2200, 0), 1e-3, 4)
    float32_only(monkeypatch)
    want = nearest_two(d0, d1)
    for force in (False, True):
        if force:
            int8_always(monkeypatch)
        else:
            monkeypatch.setattr(similarity, "INT8_MIN_KEYPOINTS", 2048)
        got = nearest_two(d0, d1)
        assert torch.equal(got[0], want[0]) and torch.equal(got[2], want[2])
        sim = torch.from_numpy(d0) @ torch.from_numpy(d1).T
        assert torch.equal(sim.gather(1, got[1]), got[0])
        assert_whole_matrix_topk(d0, d1, got)


def test_int8_error_bound_holds(sfm_descriptors):
    """The bound of ``int8_candidates`` holds on every pair (the error lies in an interval of width
    W around the int8 product: within W of it), and is not vacuous (the largest error is more than
    a third of W / 2): real rootSIFT and signed descriptors."""
    def spread(x):
        return torch.relu(x).norm(dim=1).max().item() + torch.relu(-x).norm(dim=1).max().item()

    d0, d1 = sfm_descriptors
    for x, y in ((d0, d1), (perturbed(d0 - 0.08, 0.0, 0), perturbed(d1 - 0.1, 0.0, 0))):
        a, b = torch.from_numpy(x), torch.from_numpy(y)
        (qa, oa, sa, a_hat), (qb, ob, sb, b_hat) = similarity.quantise(a, len(a)), similarity.quantise(b, len(b))
        assert torch.equal(a_hat, (qa.float() + oa) * sa) and qa.abs().max() <= 127
        approx = ((qa.double() + oa) @ (qb.double() + ob).T) * (sa * sb)
        u = 2.0 ** -24
        rho = 128 * u / (1 - 128 * u) * a.norm(dim=1).max().item() * b.norm(dim=1).max().item()
        error = ((a @ b.T).double() - approx).abs().max().item()
        width = spread(a) * spread(b - b_hat) + spread(b_hat) * spread(a - a_hat)
        assert width / 6 < error <= width + 2 * rho


@pytest.mark.parametrize("kind", ["mutual", "top2"])
def test_candidates_at_4096_keypoints_equal_those_of_the_float32_product(sfm_descriptors, monkeypatch, kind):
    """Through the int8 pass: the candidates and features of the whole matrix and of the float32
    path, bit for bit."""
    d0, d1 = sfm_descriptors
    cand, feats = descriptor_candidates(d0, d1, kind)
    ref_cand, ref_feats = whole_matrix_candidates(d0, d1, kind)
    np.testing.assert_array_equal(cand, ref_cand)
    np.testing.assert_array_equal(feats, ref_feats)
    float32_only(monkeypatch)
    before = descriptor_candidates(d0, d1, kind)
    np.testing.assert_array_equal(cand, before[0])
    np.testing.assert_array_equal(feats, before[1])


def whole_matrix_nearest_neighbours(d0, d1, ratio):
    """Mutual nearest neighbours (and Lowe's test both ways) as they were computed before
    ``nearest_two``: from the whole distance matrix, first index on ties."""
    dist2 = np.maximum(2.0 - 2.0 * (torch.from_numpy(d0) @ torch.from_numpy(d1).T).numpy(), 0.0)
    nn0, nn1 = dist2.argmin(1), dist2.argmin(0)
    keep = nn1[nn0] == np.arange(len(d0))
    if ratio is not None:
        rows, cols = np.partition(dist2, 1, axis=1)[:, :2], np.partition(dist2, 1, axis=0)[:2]
        keep &= (rows[:, 0] < ratio**2 * rows[:, 1]) & (cols[0] < ratio**2 * cols[1])[nn0]
    i = np.nonzero(keep)[0]
    return np.stack([i, nn0[i]], 1), (1.0 - dist2[i, nn0[i]] / 4.0).astype(np.float32)


@pytest.mark.parametrize("ratio", [None, 0.8])
def test_nearest_neighbours_equal_those_of_the_whole_matrix(sfm_descriptors, ratio):
    """``nearest_neighbor_match`` reads the two nearest both ways off ``nearest_two`` (through its
    int8 pass at 4096 keypoints): the matches and scores of the whole distance matrix, bit for bit;
    also at 1024 keypoints, and with keypoints repeated in image 0 (without the ratio test, which
    the copies fail: the first of them is kept)."""
    d0, d1 = sfm_descriptors
    cases = [(d0, d1), (d0[:1024], d1[:1024])] + ([(np.concatenate([d0[:300], d0[:300]]), d1[:1000])] if ratio is None else [])
    for a, b in cases:
        matches, scores = nearest_neighbor_match(a, b, ratio)
        want_matches, want_scores = whole_matrix_nearest_neighbours(a, b, ratio)
        assert len(matches) >= 10
        np.testing.assert_array_equal(matches, want_matches)
        np.testing.assert_array_equal(scores, want_scores)
    if ratio is None:
        assert len(matches) > 50 and matches[:, 0].max() < 300  # the repeated keypoints' matches are their first copies'


def test_dual_softmax_sums_to_at_most_one_per_keypoint():
    z = torch.tensor([2.0, 1.0, 0.5, -1.0])
    g0, g1 = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2])
    p = torch.exp(sparse_dual_softmax(z, g0, g1, torch.tensor(0.0)))
    for g in (g0, g1):
        for k in g.unique():
            assert p[g == k].sum() < 1
    assert p[0] > p[1]


def test_the_network_reads_large_images_at_its_training_resolution(graphs):
    """The keypoints of images twice the training size (1280x960) give the network the graph and
    the scores of the same keypoints at 640x480 (``resolution``), both images scaled by the factor
    of the larger; ``resolution=0`` reads them as extracted."""
    kp0, kp1, _, cand, data = graphs[0]
    cfg = CandidateGraphConfig(layers=2, dim=32)
    big = (1280, 960)

    def doubled(kp):
        return Keypoints(kp.xy * 2, kp.scale * 2, kp.ori, kp.score, kp.descriptors)
    cand2, data2 = candidate_graph(doubled(kp0), doubled(kp1), big, big, cfg)
    np.testing.assert_array_equal(cand2, cand)
    assert torch.equal(data2.pos0, data.pos0) and torch.equal(data2.pos1, data.pos1)
    assert torch.equal(data2.edge_index0, data.edge_index0) and torch.equal(data2.edge_index1, data.edge_index1)
    torch.testing.assert_close(data2.x, data.x)
    assert (data2.pos_scale == 0.5).all() and (data.pos_scale == 1).all()
    torch.manual_seed(0)
    model = CandidateGraphNet(cfg).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(data2).score, model(data).score, rtol=1e-4, atol=1e-5)
    _, as_extracted = candidate_graph(doubled(kp0), doubled(kp1), big, big, replace(cfg, resolution=0))
    assert torch.equal(as_extracted.pos0, 2 * data.pos0) and (as_extracted.pos_scale == 1).all()
    _, mixed = candidate_graph(kp0, doubled(kp1), SIZE, big, cfg)  # one factor for both: the displacements keep their scale
    assert torch.equal(mixed.pos0, data.pos0 / 2) and torch.equal(mixed.pos1, data.pos1)


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


def test_a_file_from_before_view_synthesis_computes_what_it_did_whatever_the_tilts(graphs, tmp_path):
    """A network of the ten node features before the view tilts loads with zero weights on them: its
    scores are those of its own ten inputs, whatever the tilts say."""
    from pygmatch.nn.candidate_graph import NODE_FEATURES, NODE_FEATURES_BEFORE_VIEWS

    torch.manual_seed(0)
    net = CandidateGraphNet(CandidateGraphConfig(layers=2, dim=32)).eval()
    old = len(NODE_FEATURES_BEFORE_VIEWS)
    state = net.state_dict()
    state = {**state, "mean": state["mean"][:old], "std": state["std"][:old],
             "encode.0.weight": torch.cat([state["encode.0.weight"][:, :old], state["encode.0.weight"][:, len(NODE_FEATURES):]], 1)}
    ckpt = {"format": "pygmatch-candidate-graph", "version": 2, "config": {"dim": 32, "layers": 2}, "state_dict": state,
            "node_features": list(NODE_FEATURES_BEFORE_VIEWS)}
    torch.save(ckpt, tmp_path / "before.pt")
    loaded = CandidateGraphMatching.load(tmp_path / "before.pt").model
    data = graphs[0][4].clone()
    with torch.no_grad():
        plain = loaded(data).score
        data.x[:, old:] = torch.rand(data.num_nodes, len(NODE_FEATURES) - old) * 2  # log tilts up to 8
        tilted = loaded(data).score
    torch.testing.assert_close(plain, tilted)
    assert torch.equal(loaded.encode[0].weight[:, old:len(NODE_FEATURES)], torch.zeros(32, len(NODE_FEATURES) - old))
    torch.save({**ckpt, "node_features": list(NODE_FEATURES_BEFORE_VIEWS[:9])}, tmp_path / "other.pt")
    with pytest.raises(PygmatchError, match="other node features"):
        CandidateGraphMatching.load(tmp_path / "other.pt")


def test_view_candidates_of_an_images_own_keypoints_are_its_plain_candidates(graphs):
    """Without simulated views, ``view_candidate_graph`` gives the mutual nearest neighbours, with
    the scale change, rotation and scale of plain SIFT and tilt 1; only the ratios differ (against the
    first neighbour more than 10 px from the nearest instead of the second nearest)."""
    from pygmatch.data.views import ViewKeypoints
    from pygmatch.matching.candidate_graph import view_candidate_graph

    kp0, kp1, H, cand, data = graphs[1]
    cfg = CandidateGraphConfig(layers=2, dim=32)
    vcand, vdata = view_candidate_graph(ViewKeypoints.of_image(kp0), ViewKeypoints.of_image(kp1), SIZE, SIZE, cfg)
    order, vorder = np.lexsort(cand.T[::-1]), np.lexsort(vcand.T[::-1])
    np.testing.assert_array_equal(cand[order], vcand[vorder])
    x, vx = data.x[order], vdata.x[vorder]
    torch.testing.assert_close(vx[:, [0, 3, 4, 5, 6, 7, 8, 9]], x[:, [0, 3, 4, 5, 6, 7, 8, 9]], atol=1e-5, rtol=1e-5)
    assert (vx[:, 10:] == 0).all()
    assert (vx[:, 1] <= x[:, 1] + 1e-6).all()  # the first inconsistent neighbour is never nearer than the second nearest
    torch.testing.assert_close(vdata.log_scale[vorder], data.log_scale[order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cos(vdata.angle[vorder] - data.angle[order]), torch.ones(len(cand)), atol=1e-5, rtol=1e-5)
