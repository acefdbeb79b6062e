"""pygmatch: keypoint matching as a graph neural network on PyTorch Geometric.

``pygmatch.Pipeline.load("default").match("a.jpg", "b.jpg")`` matches two images; see
``pygmatch.pipeline``. The names below are imported on first use, so that a command's ``--help``
answers without loading torch."""
from .lazy import lazy_attributes

_WHERE = {
    "Pipeline": ".pipeline", "MatchResult": ".pipeline", "Features": ".pipeline", "Extractor": ".pipeline",
    "RelativePose": ".data.epipolar",
    "CandidateGraphNet": ".nn", "CandidateGraphConfig": ".nn", "PygmatchError": ".errors",
    "Keypoints": ".data.features", "extract": ".data.features",
}
__all__ = list(_WHERE)
__version__ = "0.1.0"

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
