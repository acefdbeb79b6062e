"""The base of every intra-image edge transform."""
from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..data.pair_data import PairData


def complete_edges(n: int, loop: bool = True, device=None) -> torch.Tensor:
    """All n² (or n² − n without loops) directed edges, target-major. Only for small n and tests:
    the model never needs this list because complete graphs are marked, not materialised."""
    idx = torch.arange(n, device=device)
    src, dst = idx.repeat(n), idx.repeat_interleave(n)
    keep = torch.ones_like(src, dtype=torch.bool) if loop else src != dst
    return torch.stack([src[keep], dst[keep]])


class GraphTransform(BaseTransform):
    """Builds the edges of one image's keypoints from its ``pos``/``pos_norm``/``x``.

    Works on a single-image ``Data`` and on a ``PairData`` (both images get their own graph), so
    the same object composes with ``torch_geometric.transforms.Compose`` in either place.
    Subclasses implement ``edge_sets(data) -> list[(edge_index, complete)]``: one entry per scale.
    ``exclusive`` = the edge sets must not overlap: a complete set then means "every edge that no
    other set holds" (disjoint multi-scale rings); the model masks accordingly.
    """

    exclusive = False
    scales = 1  # how many edge sets ``edge_sets`` returns

    def edge_sets(self, data: Data) -> list[tuple[torch.Tensor, bool]]:
        raise NotImplementedError

    def forward(self, data: Data) -> Data:
        if isinstance(data, PairData):
            for image in ("0", "1"):
                data.set_side(image, self.forward(data.side(image)))
            return data
        sets = self.edge_sets(data)
        data.edge_index = torch.cat([e for e, _ in sets], 1) if sets else torch.zeros(2, 0, dtype=torch.long)
        data.edge_scale = torch.cat([torch.full((e.size(1),), k, dtype=torch.long) for k, (e, _) in enumerate(sets)])
        data.scale_complete = torch.tensor([[c for _, c in sets]], dtype=torch.bool)
        data.scale_exclusive = torch.tensor([[self.exclusive]])
        return data

    def params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.__class__.__name__}({args})"
