"""The networks: the attention graph matcher (``GraphMatcher``, ``MatcherConfig``), its attention,
assignment heads and losses, and the candidate graph network. The names below are imported on
first use, so that a command's ``--help`` answers without loading torch."""
from ..lazy import lazy_attributes

_WHERE = {
    **dict.fromkeys(["DualSoftmaxHead", "SinkhornHead", "extract_matches", "log_sinkhorn"], ".assignment"),
    **dict.fromkeys(["DenseBlocks", "FourierPositions", "GraphAttention"], ".attention"),
    **dict.fromkeys(["CandidateGraphConfig", "CandidateGraphNet"], ".candidate_graph"),
    **dict.fromkeys(["PRESETS", "MatcherConfig"], ".config"),
    "GraphMatcher": ".model",
}
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
