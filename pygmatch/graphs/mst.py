import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import Delaunay, QhullError

from .base import GraphTransform

_EPS = 1e-6  # csgraph drops zero weights, which would lose edges between duplicate keypoints


def mst_edges(pos: torch.Tensor) -> torch.Tensor:
    """Undirected Euclidean minimum spanning tree (both directions), O(n log n).

    The Euclidean MST is a subgraph of the Delaunay triangulation, so only its ~3n edges are
    weighed. Qhull's joggle option ('QJ') triangulates duplicate and collinear points too.
    """
    n = pos.size(0)
    if n < 2:
        return torch.zeros(2, 0, dtype=torch.long)
    pts = pos.detach().cpu().double().numpy()
    if n == 2:
        src, dst = np.array([0]), np.array([1])
    else:
        try:
            simplices = Delaunay(pts, qhull_options="QJ").simplices
        except QhullError:  # pragma: no cover - QJ makes this practically unreachable
            simplices = np.array([[i, i + 1, i + 2] for i in range(n - 2)])
        cand = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
        cand = np.unique(np.sort(cand, axis=1), axis=0)
        w = np.linalg.norm(pts[cand[:, 0]] - pts[cand[:, 1]], axis=1) + _EPS
        tree = minimum_spanning_tree(coo_matrix((w, (cand[:, 0], cand[:, 1])), shape=(n, n))).tocoo()
        src, dst = tree.row, tree.col
    edges = np.concatenate([np.stack([src, dst]), np.stack([dst, src])], 1)
    return torch.from_numpy(edges).long()


class MSTGraph(GraphTransform):
    """Euclidean minimum spanning tree of the keypoints, undirected (n − 1 edges each way)."""

    def edge_sets(self, data):
        return [(mst_edges(data.pos), False)]
