import torch

from .base import GraphTransform


class CompleteGraph(GraphTransform):
    """SuperGlue's graph: every keypoint attends to every keypoint (itself included).

    The n² edges are not materialised: ``scale_complete`` marks the edge set, and the model runs
    its dense attention (``scaled_dot_product_attention``) on it.
    """

    def edge_sets(self, data):
        return [(torch.zeros(2, 0, dtype=torch.long), True)]
