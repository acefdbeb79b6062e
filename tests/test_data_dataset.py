import numpy as np
import torch

from pygmatch.data import HomographyPairs
from pygmatch.graphs import KNNGraph, MultiScaleGraph


def test_items_are_reproducible_and_change_with_the_epoch(embedded_dir):
    a = HomographyPairs(embedded_dir, graph=KNNGraph(8), max_keypoints=200, max_images=2)
    b = HomographyPairs(embedded_dir, graph=KNNGraph(8), max_keypoints=200, max_images=2)
    p, q = a[1], b[1]
    assert torch.equal(p.H_0to1, q.H_0to1) and torch.equal(p.pos_1, q.pos_1) and torch.equal(p.gt_matches, q.gt_matches)
    a.set_epoch(1)
    assert not torch.equal(a[1].H_0to1, p.H_0to1)  # a new epoch draws new homographies
    fixed = HomographyPairs(embedded_dir, graph=KNNGraph(8), max_keypoints=200, max_images=2, fixed=True, cache=True)
    first = fixed[0]
    fixed.set_epoch(5)
    assert fixed[0] is first  # a fixed (validation) set is the same every pass, and cached


def test_items_carry_real_keypoints_graphs_and_ground_truth(embedded_dir):
    ds = HomographyPairs(embedded_dir, graph=MultiScaleGraph((4, 8), "nested"), max_keypoints=300, max_images=1)
    p = ds[0]
    assert p.x_0.shape[1] == 128 and 0 < p.x_0.size(0) <= 300
    assert p.scale_complete_0.tolist() == [[False, False]]
    H = p.H_0to1[0].double().numpy()
    i, j = p.gt_matches.numpy()
    proj = np.c_[p.pos_0[i].numpy(), np.ones(len(i))] @ H.T
    err = np.linalg.norm(proj[:, :2] / proj[:, 2:] - p.pos_1[j].numpy(), axis=1)
    assert len(i) > 50 and (err < 3).all()  # the ground truth really reprojects
    assert "HomographyPairs(" in repr(ds) and "MultiScaleGraph(ks=(4, 8), mode='nested')" in repr(ds)
