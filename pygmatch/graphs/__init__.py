"""Edge construction: which keypoints each keypoint's attention follows.

Every intra-image transform is a PyG ``BaseTransform`` that works on one image's ``Data`` or on a
``PairData``; swap one for another in one line::

    pairs = HomographyPairs("pygmatch/datasets/coco-mini", graph=KNNGraph(k=16))
"""
from .base import GraphTransform, complete_edges
from .complete import CompleteGraph
from .cross import CompleteCross, DescriptorKNNCross
from .descriptor_knn import DescriptorKNNGraph
from .knn import KNNGraph
from .mst import MSTGraph
from .multiscale import MultiScaleGraph
from .partition import PartitionGraph
from .radius import RadiusGraph
from .registry import CROSS, GRAPHS, graphs_from_flags, make_cross, make_graph

__all__ = ["GraphTransform", "complete_edges", "CompleteGraph", "CompleteCross", "DescriptorKNNCross",
           "DescriptorKNNGraph", "KNNGraph", "MSTGraph", "MultiScaleGraph", "PartitionGraph", "RadiusGraph",
           "CROSS", "GRAPHS", "graphs_from_flags", "make_cross", "make_graph"]
