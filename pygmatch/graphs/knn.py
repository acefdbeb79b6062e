from .base import GraphTransform
from .neighbors import knn_edges


class KNNGraph(GraphTransform):
    """Each keypoint attends to its ``k`` nearest keypoints in the image (no self-loop).

    With n ≤ k every keypoint gets all n − 1 others. ``backend``: see ``graphs.neighbors``.
    """

    def __init__(self, k: int = 16, backend: str = "auto"):
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k, self.backend = int(k), backend

    def edge_sets(self, data):
        return [(knn_edges(data.pos, self.k, self.backend), False)]

    def params(self):
        return {"k": self.k}
