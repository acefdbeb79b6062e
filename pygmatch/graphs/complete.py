import torch

from .base import GraphTransform


class CompleteGraph(GraphTransform):
    """SuperGlue's graph: every keypoint attends to every keypoint (itself included).

    The n² edges are not listed here: ``scale_complete`` marks the edge set, and the user of the
    transform writes it out (the candidate graph network: ``pygmatch.matching.candidate_graph.intra_edges``,
    without self-loops).
    """

    def edge_sets(self, data):
        return [(torch.zeros(2, 0, dtype=torch.long), True)]
