"""pygmatch: keypoint matching as a graph neural network on PyTorch Geometric.

``pygmatch.Pipeline.load("default").match("a.jpg", "b.jpg")`` matches two images; see
``pygmatch.pipeline``."""
from .data.features import Keypoints, extract
from .data.pair_data import PairData
from .errors import PygmatchError
from .nn import GraphMatcher, MatcherConfig
from .pipeline import Extractor, Features, MatchResult, Pipeline

__all__ = ["Pipeline", "MatchResult", "Features", "Extractor", "GraphMatcher", "MatcherConfig", "PairData", "PygmatchError",
           "Keypoints", "extract"]
__version__ = "0.1.0"
