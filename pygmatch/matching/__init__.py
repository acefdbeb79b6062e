"""The matching stages, each ``match(kp0, kp1, size0, size1) -> (matches (K, 2), scores (K,))``, and
the refiners, each ``refine(image0, image1, points0, points1) -> points1``: the pieces a
``pygmatch.Pipeline`` is made of."""
from .candidate_graph import CandidateGraphMatching
from .graph import GraphMatching
from .nearest import NearestNeighbor, nearest_neighbor_match
from .oracle import Oracle, parse_oracle
from .refine import LearnedRefiner, PatchRefiner, load_refiner
from .verifier import CandidateVerifier

__all__ = ["CandidateGraphMatching", "GraphMatching", "NearestNeighbor", "nearest_neighbor_match", "Oracle", "parse_oracle",
           "LearnedRefiner", "PatchRefiner", "load_refiner", "CandidateVerifier"]
