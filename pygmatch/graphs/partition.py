import warnings

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from .base import GraphTransform
from .names import METHODS  # noqa: F401 (re-exported)



def group_edges(groups: torch.Tensor) -> torch.Tensor:
    """Complete graphs (with self-loops) inside each group of a node -> group assignment."""
    edges = []
    for g in torch.unique(groups):
        members = torch.nonzero(groups == g).flatten()
        k = members.numel()
        edges.append(torch.stack([members.repeat(k), members.repeat_interleave(k)]))
    return torch.cat(edges, 1) if edges else torch.zeros(2, 0, dtype=torch.long)


class PartitionGraph(GraphTransform):
    """Split the keypoints into disjoint groups, fully connected (self-loops included) inside each.

    ``method="grid"``: a uniform ``cells = (columns, rows)`` grid over the image.
    ``method="kmeans"``: ``clusters`` groups by k-means on the positions (seeded, deterministic).
    """

    def __init__(self, cells: tuple[int, int] = (4, 4), method: str = "grid", clusters: int = 16, seed: int = 0):
        if method not in METHODS:
            raise ValueError(f"unknown partition method {method!r}; choose from {', '.join(METHODS)}")
        cells = tuple(int(c) for c in cells)
        if len(cells) != 2 or min(cells) < 1:
            raise ValueError(f"cells must be two positive integers (columns, rows), got {cells}")
        if int(clusters) < 1:
            raise ValueError(f"clusters must be >= 1, got {clusters}")
        self.cells, self.method, self.clusters, self.seed = cells, method, int(clusters), int(seed)

    def groups(self, data) -> torch.Tensor:
        n = data.pos.size(0)
        if self.method == "grid":
            w, h = data.image_size.reshape(-1)[:2].tolist()
            cx = (data.pos[:, 0] / w * self.cells[0]).floor().long().clamp(0, self.cells[0] - 1)
            cy = (data.pos[:, 1] / h * self.cells[1]).floor().long().clamp(0, self.cells[1] - 1)
            return cy * self.cells[0] + cx
        pts = data.pos_norm.detach().cpu().double().numpy()
        k = min(self.clusters, len(np.unique(pts, axis=0)))  # duplicates cannot seed separate clusters
        if k <= 1:
            return torch.zeros(n, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an emptied cluster is harmless: it just holds no group
            _, labels = kmeans2(pts, k, minit="++", seed=np.random.default_rng(self.seed))
        return torch.from_numpy(labels).long()

    def edge_sets(self, data):
        if data.pos.size(0) == 0:
            return [(torch.zeros(2, 0, dtype=torch.long), False)]
        return [(group_edges(self.groups(data)), False)]

    def params(self):
        if self.method == "grid":
            return {"cells": self.cells, "method": "grid"}
        return {"method": "kmeans", "clusters": self.clusters, "seed": self.seed}
