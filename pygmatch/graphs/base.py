"""The base of every intra-image edge transform."""
from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..data.features import Keypoints


def complete_edges(n: int, loop: bool = True, device=None) -> torch.Tensor:
    """All n² (or n² − n without loops) directed edges, target-major: what a complete edge set
    (marked by ``scale_complete``) stands for."""
    idx = torch.arange(n, device=device)
    src, dst = idx.repeat(n), idx.repeat_interleave(n)
    keep = torch.ones_like(src, dtype=torch.bool) if loop else src != dst
    return torch.stack([src[keep], dst[keep]])


def keypoint_data(kp: Keypoints, image_size: tuple[int, int]) -> Data:
    """One image's keypoints as a PyG ``Data`` (no edges yet: a graph transform adds them)."""
    pos = torch.from_numpy(np.ascontiguousarray(kp.xy, np.float32))
    w, h = image_size
    return Data(x=torch.from_numpy(np.ascontiguousarray(kp.descriptors, np.float32)), pos=pos, pos_norm=pos / float(max(w, h)),
                image_size=torch.tensor([[w, h]], dtype=torch.float32), num_nodes=len(kp))


class GraphTransform(BaseTransform):
    """Builds the edges of one image's keypoints from its ``pos``/``pos_norm``/``x``.

    Works on one image's ``Data`` (``keypoint_data``, or the candidate graph network's candidates
    at their positions in one image) and composes with ``torch_geometric.transforms.Compose``.
    Subclasses implement ``edge_sets(data) -> list[(edge_index, complete)]``: one entry per scale.
    ``exclusive`` = the edge sets must not overlap: a complete set then means "every edge that no
    other set holds" (disjoint multi-scale rings), and that is how the candidate graph network's
    ``intra_edges`` writes it out.
    """

    exclusive = False
    scales = 1  # how many edge sets ``edge_sets`` returns

    def edge_sets(self, data: Data) -> list[tuple[torch.Tensor, bool]]:
        raise NotImplementedError

    def forward(self, data: Data) -> Data:
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
