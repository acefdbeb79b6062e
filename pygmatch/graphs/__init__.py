"""Edge construction: which keypoints each keypoint's attention follows.

Every intra-image transform is a PyG ``BaseTransform`` that works on one image's ``Data`` or on a
``PairData``; swap one for another in one line::

    pairs = HomographyPairs("pygmatch/datasets/coco-mini", graph=KNNGraph(k=16))

The names below are imported on first use (``names.py`` holds what the flags offer, without torch).
"""
from ..lazy import lazy_attributes

_WHERE = {
    "GraphTransform": ".base", "complete_edges": ".base", "CompleteGraph": ".complete", "CompleteCross": ".cross",
    "DescriptorKNNCross": ".cross", "DescriptorKNNGraph": ".descriptor_knn", "KNNGraph": ".knn", "MSTGraph": ".mst",
    "MultiScaleGraph": ".multiscale", "PartitionGraph": ".partition", "RadiusGraph": ".radius",
    **dict.fromkeys(["CROSS", "GRAPHS", "graphs_from_flags", "make_cross", "make_graph"], ".registry"),
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
