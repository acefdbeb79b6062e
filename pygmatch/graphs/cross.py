"""Inter-image (cross) edge transforms; they act on a ``PairData``."""
import torch
from torch_geometric.transforms import BaseTransform

from .neighbors import bipartite_knn


class CompleteCross(BaseTransform):
    """Every keypoint of one image attends to every keypoint of the other (SuperGlue); marked, not listed."""

    def forward(self, data):
        data.edge_index_cross = torch.zeros(2, 0, dtype=torch.long)
        data.cross_complete = torch.tensor([[True]])
        return data

    def params(self) -> dict:
        return {}

    def __repr__(self):
        return "CompleteCross()"


class DescriptorKNNCross(BaseTransform):
    """Cross edges between each keypoint and its ``k`` nearest descriptors in the other image
    (the union of both directions, each pair listed once as (i in image 0, j in image 1))."""

    def __init__(self, k: int = 16):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)

    def forward(self, data):
        n1 = data.x_1.size(0)
        one_to_zero = bipartite_knn(data.x_1, data.x_0, self.k).flip(0)  # (i, j): j among i's nearest
        zero_to_one = bipartite_knn(data.x_0, data.x_1, self.k)  # (i, j): i among j's nearest
        pairs = torch.cat([one_to_zero, zero_to_one], 1)
        key = torch.unique(pairs[0] * max(n1, 1) + pairs[1])
        data.edge_index_cross = torch.stack([key // max(n1, 1), key % max(n1, 1)])
        data.cross_complete = torch.tensor([[False]])
        return data

    def params(self) -> dict:
        return {"k": self.k}

    def __repr__(self):
        return f"DescriptorKNNCross(k={self.k})"
