import torch

from .base import GraphTransform
from .neighbors import bipartite_knn


class DescriptorKNNGraph(GraphTransform):
    """Each keypoint attends to the ``k`` keypoints of the same image with the nearest descriptors
    (``x``; no self-loop): the research notes' graph rebuilt from features instead of positions."""

    def __init__(self, k: int = 16):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)

    def edge_sets(self, data):
        return [(descriptor_knn_edges(data.x, self.k), False)]

    def params(self):
        return {"k": self.k}


def descriptor_knn_edges(x: torch.Tensor, k: int) -> torch.Tensor:
    n = x.size(0)
    if n < 2:
        return torch.zeros(2, 0, dtype=torch.long, device=x.device)
    # k + 1 nearest including the point itself, which is then dropped (exact duplicates aside,
    # a point is its own nearest descriptor).
    edges = bipartite_knn(x, x, min(k, n - 1) + 1)
    edges = edges[:, edges[0] != edges[1]]
    # Keep k per target (a duplicate descriptor can push the point itself out of the k + 1).
    order = torch.argsort(edges[1], stable=True)
    edges = edges[:, order]
    rank = torch.arange(edges.size(1)) - torch.searchsorted(edges[1], edges[1])
    return edges[:, rank < min(k, n - 1)]
