import torch

from .base import GraphTransform
from .neighbors import knn_table, table_to_edges
from .names import MODES, parse_ks  # noqa: F401 (MODES: re-exported)



class MultiScaleGraph(GraphTransform):
    """Several kNN edge sets at once, one per ``k`` (``"all"`` = the complete graph), each kept as
    its own set (``edge_scale``) so the model can run one branch per scale.

    ``mode="nested"``: set s is the k_s-NN graph, so G(8) ⊂ G(16) ⊂ G(32).
    ``mode="disjoint"``: rings: set s holds the neighbours ranked k_{s−1}+1 … k_s, so the sets share
    no edge. A final ``"all"`` is the complete graph (marked, not listed) in nested mode and,
    in disjoint mode, everything beyond the previous ring (written out without the earlier sets' edges).
    """

    def __init__(self, ks=(8, 16, 32, "all"), mode: str = "nested"):
        if mode not in MODES:
            raise ValueError(f"unknown multi-scale mode {mode!r}; choose from {', '.join(MODES)}")
        self.ks, self.mode = parse_ks(ks), mode
        self.exclusive = mode == "disjoint"

    def edge_sets(self, data):
        finite = [k for k in self.ks if k != "all"]
        table = knn_table(data.pos, max(finite)) if finite else None
        sets, prev = [], 0
        for k in self.ks:
            if k == "all":
                sets.append((torch.zeros(2, 0, dtype=torch.long), True))
                continue
            lo = prev if self.mode == "disjoint" else 0
            sets.append((table_to_edges(table[:, lo:k]), False))
            prev = k
        return sets

    @property
    def scales(self) -> int:
        return len(self.ks)

    def params(self):
        return {"ks": self.ks, "mode": self.mode}
