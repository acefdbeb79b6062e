from .assignment import DualSoftmaxHead, SinkhornHead, extract_matches, log_sinkhorn
from .attention import DenseBlocks, FourierPositions, GraphAttention
from .config import PRESETS, MatcherConfig
from .model import GraphMatcher

__all__ = ["DualSoftmaxHead", "SinkhornHead", "extract_matches", "log_sinkhorn", "DenseBlocks", "FourierPositions",
           "GraphAttention", "PRESETS", "MatcherConfig", "GraphMatcher"]
