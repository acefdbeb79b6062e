"""Edge construction: which keypoints each keypoint's attention follows.

Every transform is a PyG ``BaseTransform`` over one image's points (keypoints, or the candidate
graph network's candidates at their positions in that image); swap one for another in one line::

    python -m train.run --graph radius --radius 0.05          # or: CandidateGraphConfig(graph={"name": "radius", "r": 0.05})

The names below are imported on first use (``names.py`` holds what the flags offer, without torch).
"""
from ..lazy import lazy_attributes

_WHERE = {
    "GraphTransform": ".base", "complete_edges": ".base", "keypoint_data": ".base", "CompleteGraph": ".complete", "KNNGraph": ".knn",
    "MSTGraph": ".mst", "MultiScaleGraph": ".multiscale", "PartitionGraph": ".partition", "RadiusGraph": ".radius",
    **dict.fromkeys(["GRAPHS", "graph_from_flags", "graph_from_params", "graph_params", "make_graph"], ".registry"),
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
