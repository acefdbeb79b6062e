"""The matching stages, each ``match(kp0, kp1, size0, size1) -> (matches (K, 2), scores (K,))``: the
graph network, nearest neighbour and the ratio test (baselines), and the evaluation's oracles.
The refiners are the next stage, ``pygmatch.refinement``."""
from .candidate_graph import CandidateGraphMatching
from .nearest import NearestNeighbor, nearest_neighbor_match
from .oracle import Oracle, parse_oracle

__all__ = ["CandidateGraphMatching", "NearestNeighbor", "nearest_neighbor_match", "Oracle", "parse_oracle"]
