"""The graph network (``CandidateGraphNet`` with its ``CandidateGraphConfig``): one model file,
``candidate_graph.py``. The names below are imported on first use, so that a command's ``--help``
answers without loading torch."""
from ..lazy import lazy_attributes

_WHERE = dict.fromkeys(["CandidateGraphConfig", "CandidateGraphNet", "CandidateGraphOutput", "candidate_loss"], ".candidate_graph")
__all__ = list(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
