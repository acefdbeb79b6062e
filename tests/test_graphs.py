"""Every edge transform on hand-made and real keypoints, degenerate inputs, backends, batching."""
import argparse

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose
from torch_geometric.utils import scatter

from pygmatch.errors import PygmatchError
from pygmatch.data.features import extract
from pygmatch.graphs import (
    CompleteGraph, KNNGraph, MSTGraph, MultiScaleGraph, PartitionGraph, RadiusGraph, complete_edges, keypoint_data, make_graph,
)
from pygmatch.commands.flags import add_graph_args
from pygmatch.graphs.registry import flags_from_params, graph_from_flags, graph_from_params, graph_params
from pygmatch.graphs.neighbors import knn_bruteforce, knn_edges, radius_bruteforce, radius_edges


def points(xy, size=(100, 100), x=None):
    pos = torch.tensor(xy, dtype=torch.float32).reshape(-1, 2)
    n = pos.size(0)
    return Data(pos=pos, pos_norm=pos / max(size), x=x if x is not None else torch.randn(n, 8),
                image_size=torch.tensor([list(size)], dtype=torch.float32), num_nodes=n)


def neighbours(edge_index, node):
    return set(edge_index[0, edge_index[1] == node].tolist())


def edge_set(edge_index):
    return set(map(tuple, edge_index.t().tolist()))


LINE = [[0, 0], [1, 0], [2, 0], [3, 0], [10, 0]]
ALL = [KNNGraph(4), RadiusGraph(0.05, 8), MSTGraph(), PartitionGraph(), PartitionGraph(method="kmeans", clusters=3),
       CompleteGraph(), MultiScaleGraph((2, 4, "all"), "nested"), MultiScaleGraph((2, 4), "disjoint")]


def test_knn_on_a_line():
    e = KNNGraph(k=2)(points(LINE)).edge_index
    assert e.shape == (2, 10)
    assert neighbours(e, 0) == {1, 2} and neighbours(e, 4) == {3, 2} and neighbours(e, 2) == {1, 3}
    assert KNNGraph(k=16)(points(LINE)).edge_index.shape == (2, 20)  # n <= k: all others


@pytest.mark.parametrize("transform", ALL, ids=repr)
@pytest.mark.parametrize("xy", [[], [[5, 5]], [[5, 5]] * 12, [[1, 1], [2, 2]], [[i, 2 * i] for i in range(7)], [[0, 0]] * 3 + [[50, 50]] * 3],
                         ids=["empty", "single", "duplicates", "two", "collinear", "two-clumps"])
def test_degenerate_inputs_give_valid_edges(transform, xy):
    d = transform(points(xy))
    n = len(xy)
    assert d.edge_index.dtype == torch.long and d.edge_index.shape[0] == 2
    assert d.edge_index.numel() == 0 or (0 <= d.edge_index.min() and d.edge_index.max() < n)
    assert d.edge_scale.shape == (d.edge_index.size(1),)
    assert d.scale_complete.shape[0] == 1


def test_radius_graph_edges_and_isolated_nodes():
    d = points([[0, 0], [3, 0], [4, 0], [90, 90]])
    e = RadiusGraph(r=0.04, max_neighbors=8)(d).edge_index  # 4 px at size 100
    assert edge_set(e) == {(1, 0), (0, 1), (2, 1), (1, 2), (2, 0), (0, 2)}
    assert neighbours(e, 3) == set()  # isolated
    capped = RadiusGraph(r=0.04, max_neighbors=1)(d).edge_index
    assert neighbours(capped, 0) == {1} and neighbours(capped, 1) == {2}  # the nearest one only


def test_mst_matches_the_complete_graph_mst(image):
    pos = torch.from_numpy(extract(image, "sift", 300).xy)
    e = MSTGraph()(points(pos.tolist(), (640, 480))).edge_index
    n = pos.size(0)
    assert e.size(1) == 2 * (n - 1)
    assert edge_set(e) == edge_set(e.flip(0))  # undirected
    d = pos.double()
    weight = (d[e[0]] - d[e[1]]).norm(dim=1).sum().item() / 2
    dense = cdist(pos.numpy(), pos.numpy()) + 1e-6  # SIFT repeats locations; keep their 0-length edges
    assert weight == pytest.approx(minimum_spanning_tree(dense).sum(), rel=1e-6)


def test_mst_connects_duplicates():
    e = MSTGraph()(points([[0, 0], [0, 0], [5, 5], [5, 5], [9, 0]])).edge_index
    assert e.size(1) == 8 and edge_set(e) >= {(0, 1), (2, 3)}


def test_partition_grid_and_kmeans():
    xy = [[10, 10], [20, 20], [80, 10], [10, 80], [80, 80]]  # two in the top-left cell
    e = PartitionGraph(cells=(2, 2))(points(xy)).edge_index
    assert e.size(1) == 4 + 1 + 1 + 1  # 2² + 1 + 1 + 1, self-loops included
    assert neighbours(e, 0) == {0, 1} and neighbours(e, 4) == {4}
    clumps = [[0, 0], [1, 0], [0, 1], [1, 1], [90, 90], [91, 90], [90, 91]]
    e = PartitionGraph(method="kmeans", clusters=2)(points(clumps)).edge_index
    assert e.size(1) == 16 + 9 and neighbours(e, 5) == {4, 5, 6}


def test_complete_graph_is_marked_not_listed():
    d = CompleteGraph()(points(LINE))
    assert d.edge_index.size(1) == 0 and d.scale_complete.tolist() == [[True]]
    assert complete_edges(5).size(1) == 25 and complete_edges(5, loop=False).size(1) == 20


def unique_keypoints(image, n):
    """SIFT repeats a location with several orientations; ties make neighbour order arbitrary."""
    kp = extract(image, "sift", 2 * n)
    _, first = np.unique(kp.xy, axis=0, return_index=True)
    return kp.subset(np.sort(first)[:n])


def test_multiscale_nested_and_disjoint(image):
    d = keypoint_data(unique_keypoints(image, 400), (640, 480))
    nested = MultiScaleGraph((8, 16, 32, "all"), "nested")(d.clone())
    rings = MultiScaleGraph((8, 16, 32, "all"), "disjoint")(d.clone())
    assert nested.scale_complete.tolist() == [[False, False, False, True]] == rings.scale_complete.tolist()
    n_sets = [edge_set(nested.edge_index[:, nested.edge_scale == s]) for s in range(3)]
    r_sets = [edge_set(rings.edge_index[:, rings.edge_scale == s]) for s in range(3)]
    assert n_sets[0] < n_sets[1] < n_sets[2]
    assert [len(s) for s in n_sets] == [400 * 8, 400 * 16, 400 * 32]
    assert [len(s) for s in r_sets] == [400 * 8, 400 * 8, 400 * 16]
    assert not (r_sets[0] & r_sets[1]) and not (r_sets[1] & r_sets[2]) and not (r_sets[0] & r_sets[2])
    assert r_sets[0] | r_sets[1] | r_sets[2] == n_sets[2]
    assert n_sets[0] == edge_set(KNNGraph(8)(d.clone()).edge_index)


def test_backends_agree_with_brute_force():
    g = torch.Generator().manual_seed(0)
    for n in (1, 5, 300):
        pos = torch.rand(n, 2, generator=g)
        for k in (1, 4, 16):
            ref = edge_set(knn_bruteforce(pos, k))
            assert edge_set(knn_edges(pos, k, "scipy")) == ref
            assert edge_set(knn_edges(pos, k, "torch")) == ref
        ref = edge_set(radius_bruteforce(pos, 0.08, 12))
        assert edge_set(radius_edges(pos, 0.08, 12, "scipy")) == ref
        assert edge_set(radius_edges(pos, 0.08, 12, "torch")) == ref


def test_backends_on_duplicates_stay_valid():
    pos = torch.zeros(20, 2)
    for backend in ("scipy", "torch"):
        e = knn_edges(pos, 5, backend)
        assert e.size(1) == 100 and (e[0] != e[1]).all()
        r = radius_edges(pos, 0.1, 5, backend)
        assert r.size(1) == 100 and (r[0] != r[1]).all()


def test_keypoint_data_and_compose(image):
    kp = unique_keypoints(image, 200)
    d = keypoint_data(kp, (640, 480))
    assert d.num_nodes == 200 and d.x.shape == (200, 128) and d.image_size.tolist() == [[640.0, 480.0]]
    torch.testing.assert_close(d.pos, torch.from_numpy(kp.xy).float())
    torch.testing.assert_close(d.pos_norm, d.pos / 640)  # by the longer side
    e = Compose([KNNGraph(8)])(d).edge_index
    assert e.size(1) == 200 * 8 and (e[0] != e[1]).all()
    # each keypoint's 8 sources are its 8 nearest others
    dist = cdist(kp.xy, kp.xy) + np.diag(np.full(200, np.inf))
    for node in (0, 57, 199):
        assert neighbours(e, node) == set(np.argsort(dist[node], kind="stable")[:8].tolist())


def test_batching_equals_per_graph(image):
    """Graphs of different sizes batch without padding; a message-passing step on the batch equals
    the step on each graph."""
    kp = extract(image, "sift", 300)
    graphs = [KNNGraph(6)(keypoint_data(kp.subset(np.arange(n)), (640, 480))) for n in (300, 50, 7)]

    def step(pos, e):
        return scatter(pos[e[0]], e[1], 0, dim_size=pos.size(0), reduce="mean") - pos

    batch = next(iter(DataLoader(graphs, batch_size=3)))
    assert batch.x.size(0) == 357 and batch.batch.bincount().tolist() == [300, 50, 7]
    assert batch.image_size.shape == (3, 2) and batch.scale_complete.shape == (3, 1)
    assert batch.edge_index.size(1) == 6 * 357  # 7 keypoints: each has exactly 6 others
    out = step(batch.pos, batch.edge_index)
    for b, g in enumerate(graphs):
        torch.testing.assert_close(out[batch.batch == b], step(g.pos, g.edge_index))
    assert int(batch.edge_index[:, batch.edge_index[1] >= 350].min()) == 350  # the last graph's edges stay inside it


def test_repr_shows_parameters():
    assert repr(KNNGraph(16)) == "KNNGraph(k=16)"
    assert repr(RadiusGraph(0.05, 32)) == "RadiusGraph(r=0.05, max_neighbors=32)"
    assert repr(PartitionGraph(cells=(4, 2))) == "PartitionGraph(cells=(4, 2), method='grid')"
    assert repr(MultiScaleGraph((8, 16, "all"), "disjoint")) == "MultiScaleGraph(ks=(8, 16, 'all'), mode='disjoint')"
    assert repr(MSTGraph()) == "MSTGraph()"


def test_registry_builds_from_flags_and_python():
    p = argparse.ArgumentParser()
    add_graph_args(p)
    flags = p.parse_args(["--graph", "multiscale", "--ks", "8,16,all", "--rings", "disjoint"])
    intra = graph_from_flags(vars(flags))
    assert repr(intra) == "MultiScaleGraph(ks=(8, 16, 'all'), mode='disjoint')"
    assert repr(graph_from_flags(vars(p.parse_args(["--graph", "partition", "--cells", "3x2"])))) == "PartitionGraph(cells=(3, 2), method='grid')"
    assert repr(graph_from_flags(vars(p.parse_args([])))) == repr(graph_from_flags({})) == "KNNGraph(k=8)"  # the network's own default
    assert repr(make_graph("radius", r=0.1)) == "RadiusGraph(r=0.1, max_neighbors=32)"
    for t in (intra, RadiusGraph(0.1, 4), PartitionGraph(cells=(3, 2)), KNNGraph(3)):
        params = graph_params(t)
        assert repr(graph_from_params(params)) == repr(t) == repr(graph_from_flags(flags_from_params(params)))
    assert graph_params(intra) == {"name": "multiscale", "ks": [8, 16, "all"], "mode": "disjoint"}


def test_registry_errors_list_the_choices(capsys):
    with pytest.raises(PygmatchError, match="unknown graph 'knnn'; choose from knn, radius, mst, partition, complete, multiscale$"):
        make_graph("knnn")
    with pytest.raises(PygmatchError, match="graph 'knn' takes k; got radius"):
        make_graph("knn", radius=3)
    with pytest.raises(PygmatchError, match="k must be >= 1"):
        make_graph("knn", k=0)
    with pytest.raises(PygmatchError, match="unknown graph 'descriptor-knn'"):
        graph_from_flags({"graph": "descriptor-knn"})
    p = argparse.ArgumentParser()
    add_graph_args(p)
    for bad in (["--graph", "star"], ["--graph", "descriptor-knn"], ["--cross", "complete"], ["--ks", "16,8"], ["--cells", "4"], ["--k", "-3"],
                ["--radius", "zero"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    err = capsys.readouterr().err
    assert "invalid choice: 'star'" in err and "invalid choice: 'descriptor-knn'" in err and "unrecognized arguments: --cross" in err
    assert "increasing positive integers" in err and "COLUMNSxROWS" in err
