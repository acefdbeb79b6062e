"""pygmatch: keypoint matching as a graph neural network on PyTorch Geometric."""
from .data.pair_data import PairData
from .errors import PygmatchError
from .data.features import Keypoints, extract
from .matcher import Matcher
from .nn import GraphMatcher, MatcherConfig

__all__ = ["Matcher", "GraphMatcher", "MatcherConfig", "PairData", "PygmatchError", "Keypoints", "extract"]
__version__ = "0.1.0"
