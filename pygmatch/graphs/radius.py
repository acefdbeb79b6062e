from .base import GraphTransform
from .neighbors import radius_edges


class RadiusGraph(GraphTransform):
    """Edges from every keypoint within ``r`` (in ``pos_norm`` units: fraction of the longer image
    side), at most the ``max_neighbors`` nearest. A keypoint with nobody near stays isolated."""

    def __init__(self, r: float = 0.05, max_neighbors: int = 32, backend: str = "auto"):
        if not r > 0:
            raise ValueError(f"radius must be > 0, got {r}")
        if int(max_neighbors) < 1:
            raise ValueError(f"max_neighbors must be >= 1, got {max_neighbors}")
        self.r, self.max_neighbors, self.backend = float(r), int(max_neighbors), backend

    def edge_sets(self, data):
        return [(radius_edges(data.pos_norm, self.r, self.max_neighbors, self.backend), False)]

    def params(self):
        return {"r": self.r, "max_neighbors": self.max_neighbors}
