import torch

from .base import GraphTransform
from .neighbors import knn_table, table_to_edges

MODES = ("nested", "disjoint")


class MultiScaleGraph(GraphTransform):
    """Several kNN edge sets at once, one per ``k`` (``"all"`` = the complete graph), each kept as
    its own set (``edge_scale``) so the model can run one branch per scale.

    ``mode="nested"``: set s is the k_s-NN graph, so G(8) ⊂ G(16) ⊂ G(32).
    ``mode="disjoint"``: rings: set s holds the neighbours ranked k_{s−1}+1 … k_s, so the sets share
    no edge. A final ``"all"`` is the complete graph (marked, not listed) in nested mode and,
    in disjoint mode, everything beyond the previous ring: the model masks out the earlier sets.
    """

    def __init__(self, ks=(8, 16, 32, "all"), mode: str = "nested"):
        if mode not in MODES:
            raise ValueError(f"unknown multi-scale mode {mode!r}; choose from {', '.join(MODES)}")
        ks = tuple("all" if str(k) == "all" else int(k) for k in ks)
        finite = [k for k in ks if k != "all"]
        if not ks or any(k < 1 for k in finite) or finite != sorted(set(finite)) or ("all" in ks and ks[-1] != "all") or ks.count("all") > 1:
            raise ValueError(f"ks must be increasing positive integers, optionally ending in 'all'; got {ks}")
        self.ks, self.mode = ks, mode
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

    def params(self):
        return {"ks": self.ks, "mode": self.mode}
