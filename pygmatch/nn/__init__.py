"""The networks: the attention graph matcher (``GraphMatcher``, ``MatcherConfig``), its attention,
assignment heads and losses, and the candidate graph network. The names below are imported on
first use, so that a command's ``--help`` answers without loading torch."""
import importlib

_WHERE = {
    **dict.fromkeys(["DualSoftmaxHead", "SinkhornHead", "extract_matches", "log_sinkhorn"], ".assignment"),
    **dict.fromkeys(["DenseBlocks", "FourierPositions", "GraphAttention"], ".attention"),
    **dict.fromkeys(["CandidateGraphConfig", "CandidateGraphNet"], ".candidate_graph"),
    **dict.fromkeys(["PRESETS", "MatcherConfig"], ".config"),
    "GraphMatcher": ".model",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
