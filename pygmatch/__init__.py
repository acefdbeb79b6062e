"""pygmatch: keypoint matching as a graph neural network on PyTorch Geometric."""
from .errors import PygmatchError
from .features import Keypoints, extract

__all__ = ["PygmatchError", "Keypoints", "extract"]
__version__ = "0.1.0"
