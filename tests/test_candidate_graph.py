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
from pygmatch.matching.candidate_graph import CandidateGraphMatching, candidate_graph, descriptor_candidates
from pygmatch.matching.nearest import nearest_neighbor_match
from pygmatch.nn.candidate_graph import CandidateGraphConfig, CandidateGraphNet, candidate_loss, sparse_dual_softmax, weighted_affine_fit
from pygmatch.training.candidate_graph import fit_candidate_graph, validate

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
    with pytest.raises(PygmatchError):
        descriptor_candidates(kp0.descriptors, kp1.descriptors, "top9")


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


def test_it_learns_on_real_pairs_and_the_stage_round_trips(graphs, tmp_path):
    cfg = CandidateGraphConfig(layers=2, dim=32)
    data = [g[4] for g in graphs]
    torch.manual_seed(0)
    before = validate(CandidateGraphNet(cfg), data)
    model, log = fit_candidate_graph(data, cfg, epochs=40, lr=3e-3, batch=2, val=data, val_every=1000, log=lambda line: None)
    after = validate(model, data)
    assert after["val_loss"] < 0.6 * before["val_loss"]
    # kept candidates: more precise than all the mutual nearest neighbours
    errors = torch.cat([d.error for d in data]).numpy()
    assert after["val_p1"] > (errors < 1).mean() + 0.02
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
    assert model.layers[0].att0.w_t.weight.grad is None  # the attention takes no part
